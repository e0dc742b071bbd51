//! The accepted messages of a batch, column by column, in the Arrow types of the Iceberg tables
//! (large strings, µs UTC timestamps, decimal128(18,8), a list of strings, a string map).
//!
//! The checks here are the exact path's (`k2.ingest.checks`) on a decoded message; a message that fails any of
//! them is not accepted here and the exact path gives the reason.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Decimal128Builder, Int64Builder, LargeListBuilder, LargeStringBuilder,
    MapBuilder, MapFieldNames, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema};

use crate::message::{Dec, Kind, Message};

/// The bounds validation checks against (`k2.ingest.checks.Rules`).
#[derive(Clone, Copy)]
pub struct Rules {
    pub min_timestamp_us: i64,
    pub max_timestamp_us: i64,
}

/// The largest source sequence accepted: a long, with room for the successor a gap event records.
const MAX_SEQUENCE: i64 = i64::MAX - 1;
/// 10^10 in decimal(18,8): every value must lie below it.
const LIMIT: i64 = 1_000_000_000_000_000_000;

impl Rules {
    fn in_range(&self, ts: i64) -> bool {
        self.min_timestamp_us <= ts && ts < self.max_timestamp_us
    }
}

fn filled(text: &Option<std::borrow::Cow<'_, str>>) -> bool {
    text.as_ref().is_some_and(|t| !t.is_empty())
}

/// The exact path's verdict on a decoded message, when it is "accepted" (`check_trade` / `check_quote`).
pub fn acceptable(m: &Message<'_>, kind: Kind, rules: &Rules) -> bool {
    let common = filled(&m.exchange)
        && filled(&m.symbol)
        && filled(&m.currency)
        && filled(&m.id)
        && m.asset_class.is_some()
        && m.timestamp.is_some_and(|ts| rules.in_range(ts))
        && m.ingestion_timestamp.is_none_or(|ts| rules.in_range(ts))
        && m.source_sequence
            .is_none_or(|seq| (0..=MAX_SEQUENCE).contains(&seq));
    if !common {
        return false;
    }
    let positive = |d: Dec| matches!(d, Dec::Value(v) if v > 0 && v < LIMIT);
    let optional = |d: Dec| match d {
        Dec::Absent | Dec::Null => true,
        Dec::Value(v) => (0..LIMIT).contains(&v),
        Dec::Unfit => false,
    };
    match kind {
        Kind::Trade => m.side.is_some() && positive(m.price) && positive(m.quantity),
        Kind::Quote => {
            optional(m.bid_price)
                && optional(m.ask_price)
                && optional(m.bid_quantity)
                && optional(m.ask_quantity)
        }
    }
}

/// Column builders for one batch of accepted messages of one kind.
pub struct Columns {
    kind: Kind,
    exchange: LargeStringBuilder,
    symbol: LargeStringBuilder,
    asset_class: LargeStringBuilder,
    timestamp: TimestampMicrosecondBuilder,
    ingestion_timestamp: TimestampMicrosecondBuilder,
    currency: LargeStringBuilder,
    source_sequence: Int64Builder,
    message_id: LargeStringBuilder,
    id: LargeStringBuilder,
    decimals: [Decimal128Builder; 4],
    side: LargeStringBuilder,
    trade_conditions: LargeListBuilder<LargeStringBuilder>,
    vendor_data: MapBuilder<LargeStringBuilder, LargeStringBuilder>,
    one_sided: BooleanBuilder,
    crossed: BooleanBuilder,
}

fn decimals(capacity: usize) -> Decimal128Builder {
    Decimal128Builder::with_capacity(capacity).with_data_type(DataType::Decimal128(18, 8))
}

fn timestamps(capacity: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC")
}

fn strings(capacity: usize) -> LargeStringBuilder {
    LargeStringBuilder::with_capacity(capacity, capacity * 8)
}

fn map_names() -> MapFieldNames {
    MapFieldNames {
        entry: "entries".into(),
        key: "key".into(),
        value: "value".into(),
    }
}

impl Columns {
    pub fn new(kind: Kind, capacity: usize) -> Self {
        Columns {
            kind,
            exchange: strings(capacity),
            symbol: strings(capacity),
            asset_class: strings(capacity),
            timestamp: timestamps(capacity),
            ingestion_timestamp: timestamps(capacity),
            currency: strings(capacity),
            source_sequence: Int64Builder::with_capacity(capacity),
            message_id: strings(capacity),
            id: strings(capacity),
            decimals: [
                decimals(capacity),
                decimals(capacity),
                decimals(capacity),
                decimals(capacity),
            ],
            side: strings(capacity),
            trade_conditions: LargeListBuilder::with_capacity(LargeStringBuilder::new(), capacity)
                .with_field(Arc::new(Field::new("element", DataType::LargeUtf8, true))),
            vendor_data: MapBuilder::new(
                Some(map_names()),
                LargeStringBuilder::new(),
                LargeStringBuilder::new(),
            )
            .with_values_field(Arc::new(Field::new(
                "value",
                DataType::LargeUtf8,
                true,
            ))),
            one_sided: BooleanBuilder::with_capacity(capacity),
            crossed: BooleanBuilder::with_capacity(capacity),
        }
    }

    /// Append an accepted message (`acceptable` said yes).
    pub fn push(&mut self, m: &Message<'_>) {
        fn text<'s>(t: &'s Option<std::borrow::Cow<'_, str>>) -> &'s str {
            t.as_deref().unwrap_or_default()
        }
        self.exchange.append_value(text(&m.exchange));
        self.symbol.append_value(text(&m.symbol));
        self.asset_class.append_value(text(&m.asset_class));
        self.timestamp.append_value(m.timestamp.unwrap_or_default());
        self.ingestion_timestamp
            .append_option(m.ingestion_timestamp);
        self.currency.append_value(text(&m.currency));
        self.source_sequence.append_option(m.source_sequence);
        self.message_id.append_option(m.message_id.as_deref());
        self.id.append_value(text(&m.id));
        match &m.vendor_data {
            None => self.vendor_data.append(false).expect("map builder"),
            Some(items) => {
                for (key, value) in items {
                    self.vendor_data.keys().append_value(key);
                    self.vendor_data.values().append_value(value);
                }
                self.vendor_data.append(true).expect("map builder");
            }
        }
        let value = |d: Dec| match d {
            Dec::Value(v) => Some(i128::from(v)),
            Dec::Absent | Dec::Null | Dec::Unfit => None,
        };
        match self.kind {
            Kind::Trade => {
                self.side.append_value(text(&m.side));
                for condition in &m.trade_conditions {
                    self.trade_conditions.values().append_value(condition);
                }
                self.trade_conditions.append(true);
                self.decimals[0].append_option(value(m.price));
                self.decimals[1].append_option(value(m.quantity));
            }
            Kind::Quote => {
                // An empty side (null or zero price) is stored as null price and size.
                let (bid, bid_size) = side(value(m.bid_price), value(m.bid_quantity));
                let (ask, ask_size) = side(value(m.ask_price), value(m.ask_quantity));
                self.decimals[0].append_option(bid);
                self.decimals[1].append_option(bid_size);
                self.decimals[2].append_option(ask);
                self.decimals[3].append_option(ask_size);
                let one_sided = bid.is_none() || ask.is_none();
                self.one_sided.append_value(one_sided);
                self.crossed.append_value(!one_sided && bid > ask);
            }
        }
    }

    /// The columns as one record batch, named as in the Iceberg tables (without the source position columns).
    pub fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut fields: Vec<(&str, ArrayRef, bool)> = vec![
            ("exchange", Arc::new(self.exchange.finish()), false),
            ("symbol", Arc::new(self.symbol.finish()), false),
            ("asset_class", Arc::new(self.asset_class.finish()), false),
            ("timestamp", Arc::new(self.timestamp.finish()), false),
            (
                "ingestion_timestamp",
                Arc::new(self.ingestion_timestamp.finish()),
                true,
            ),
            ("currency", Arc::new(self.currency.finish()), false),
            (
                "source_sequence",
                Arc::new(self.source_sequence.finish()),
                true,
            ),
            ("message_id", Arc::new(self.message_id.finish()), true),
        ];
        let [mut d0, mut d1, mut d2, mut d3] = self.decimals;
        match self.kind {
            Kind::Trade => {
                fields.push(("trade_id", Arc::new(self.id.finish()), false));
                fields.push(("price", Arc::new(d0.finish()), false));
                fields.push(("quantity", Arc::new(d1.finish()), false));
                fields.push(("side", Arc::new(self.side.finish()), false));
                fields.push((
                    "trade_conditions",
                    Arc::new(self.trade_conditions.finish()),
                    true,
                ));
            }
            Kind::Quote => {
                fields.push(("quote_id", Arc::new(self.id.finish()), false));
                fields.push(("bid_price", Arc::new(d0.finish()), true));
                fields.push(("bid_quantity", Arc::new(d1.finish()), true));
                fields.push(("ask_price", Arc::new(d2.finish()), true));
                fields.push(("ask_quantity", Arc::new(d3.finish()), true));
                fields.push(("one_sided", Arc::new(self.one_sided.finish()), false));
                fields.push(("crossed", Arc::new(self.crossed.finish()), false));
            }
        }
        fields.push(("vendor_data", Arc::new(self.vendor_data.finish()), true));
        let schema = Schema::new(
            fields
                .iter()
                .map(|(name, array, nullable)| {
                    Field::new(*name, array.data_type().clone(), *nullable)
                })
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            fields.into_iter().map(|(_, array, _)| array).collect(),
        )
    }
}

fn side(price: Option<i128>, size: Option<i128>) -> (Option<i128>, Option<i128>) {
    match price {
        None | Some(0) => (None, None),
        Some(p) => (Some(p), size),
    }
}
