//! One JSON message decoded into the fields of a trade or a quote, with the types K2's wire schema gives them.
//!
//! The verdict is only "accepted" or "not accepted here": a message not accepted goes to the Python exact path
//! (`k2.ingest.validate.decode`), which gives the reference verdict and the reason. So every rule here must accept
//! no message that the exact path rejects; when in doubt (a spelling the exact path may read differently), the
//! message is not accepted and the exact path decides.
//!
//! What the exact path (msgspec into `Trade`/`Quote`) does, and this mirrors: a known field is type-checked at
//! every occurrence and the last one wins; unknown fields may hold any JSON; ints are JSON integers (no `1.0`);
//! decimals are JSON numbers or strings; strings may not hold lone surrogates; trailing whitespace only.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::decimal::{self, Exact};

/// Why a message is not accepted here (never shown: the exact path says why).
#[derive(Debug)]
pub struct NotHere;

type Str<'a> = Cow<'a, str>;

/// A decimal field: absent, JSON null, or an exact decimal(18,8) (times 10^8).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Dec {
    #[default]
    Absent,
    Null,
    Value(i64),
    /// A well-formed number that is not exact in decimal(18,8): refused, unless a later repeat of the key
    /// replaces it (the exact path keeps the last value of a repeated key).
    Unfit,
}

#[derive(Debug, Default)]
pub struct Message<'a> {
    pub exchange: Option<Str<'a>>,
    pub symbol: Option<Str<'a>>,
    pub asset_class: Option<Str<'a>>,
    pub timestamp: Option<i64>,
    pub currency: Option<Str<'a>>,
    pub id: Option<Str<'a>>, // trade_id or quote_id
    pub side: Option<Str<'a>>,
    pub trade_conditions: Vec<Str<'a>>,
    pub ingestion_timestamp: Option<i64>,
    pub source_sequence: Option<i64>,
    pub vendor_data: Option<Vec<(Str<'a>, Str<'a>)>>,
    pub message_id: Option<Str<'a>>,
    pub price: Dec,
    pub quantity: Dec,
    pub bid_price: Dec,
    pub bid_quantity: Dec,
    pub ask_price: Dec,
    pub ask_quantity: Dec,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Trade,
    Quote,
}

const ASSET_CLASSES: [&str; 5] = ["equities", "crypto", "futures", "options", "fx"];
const SIDES: [&str; 4] = ["BUY", "SELL", "SELL_SHORT", "UNKNOWN"];

/// Decode `bytes` as a message of `kind`; `Err` when it is not accepted here.
pub fn decode(bytes: &[u8], kind: Kind) -> Result<Message<'_>, NotHere> {
    // One UTF-8 check of the whole message: read from a slice, serde_json checks each raw field again, and a
    // message the exact path refuses for bad UTF-8 in a field this path skips is left to it, never accepted here.
    let text = std::str::from_utf8(bytes).map_err(|_| NotHere)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let message = de
        .deserialize_map(MessageVisitor { kind })
        .map_err(|_| NotHere)?;
    de.end().map_err(|_| NotHere)?;
    Ok(message)
}

struct MessageVisitor {
    kind: Kind,
}

fn text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Str<'de>, A::Error> {
    map.next_value_seed(StrSeed)
}

fn int<'de, A: MapAccess<'de>>(map: &mut A) -> Result<i64, A::Error> {
    let raw: &'de RawValue = map.next_value()?;
    int_text(raw.get()).ok_or_else(|| de::Error::custom("not an integer that fits a long"))
}

/// A JSON integer's text (`-?digits`; `1.0` and `1e3` are floats, not integers) as a long. Read from the text so
/// `-0` is the integer 0, as in Python. Python's ints have no size limit: one beyond a long saturates to the
/// nearest long, which every range check here refuses, as the exact path's checks refuse the real value.
fn int_text(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: i64 = 0; // accumulated as a negative number, so i64::MIN fits
    for b in digits.bytes() {
        value = value.saturating_mul(10).saturating_sub(i64::from(b - b'0'));
    }
    Some(if negative {
        value
    } else {
        value.saturating_neg()
    })
}

/// A nullable field's raw JSON, or None for null.
fn optional<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<&'de RawValue>, A::Error> {
    let raw: &'de RawValue = map.next_value()?;
    Ok(if raw.get() == "null" { None } else { Some(raw) })
}

fn opt_int<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<i64>, A::Error> {
    match optional(map)? {
        None => Ok(None),
        Some(raw) => int_text(raw.get())
            .map(Some)
            .ok_or_else(|| de::Error::custom("not an integer that fits a long")),
    }
}

fn opt_text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Str<'de>>, A::Error> {
    match optional(map)? {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<StrOwnedOrBorrowed>(raw.get())
            .map(|s| Some(s.0))
            .map_err(de::Error::custom),
    }
}

fn dec<'de, A: MapAccess<'de>>(map: &mut A, nullable: bool) -> Result<Dec, A::Error> {
    let raw: &'de RawValue = map.next_value()?;
    let text = raw.get().as_bytes();
    let exact = match text.first() {
        Some(b'n') if nullable => return Ok(Dec::Null),
        // A string without escapes is its bytes between the quotes (the usual case: no second parse).
        Some(b'"') if !text.contains(&b'\\') => decimal::parse(&text[1..text.len() - 1]),
        Some(b'"') => {
            let unescaped: Str<'de> = serde_json::from_str::<StrOwnedOrBorrowed>(raw.get())
                .map_err(de::Error::custom)?
                .0;
            decimal::parse(unescaped.as_bytes())
        }
        Some(b'-' | b'0'..=b'9') => decimal::parse(text),
        _ => Exact::Unsure,
    };
    match exact {
        Exact::Value(v) => Ok(Dec::Value(v)),
        Exact::Unfit => Ok(Dec::Unfit),
        Exact::Unsure => Err(de::Error::custom(
            "a decimal spelling left to the exact path",
        )),
    }
}

fn one_of<'a, E: de::Error>(value: Str<'a>, allowed: &[&str]) -> Result<Str<'a>, E> {
    if allowed.contains(&value.as_ref()) {
        Ok(value)
    } else {
        Err(E::custom("not an allowed value"))
    }
}

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
        let quote = self.kind == Kind::Quote;
        let mut m = Message::default();
        while let Some(key) = map.next_key_seed(StrSeed)? {
            match key.as_ref() {
                "exchange" => m.exchange = Some(text(&mut map)?),
                "symbol" => m.symbol = Some(text(&mut map)?),
                "asset_class" => m.asset_class = Some(one_of(text(&mut map)?, &ASSET_CLASSES)?),
                "timestamp" => m.timestamp = Some(int(&mut map)?),
                "currency" => m.currency = Some(text(&mut map)?),
                "ingestion_timestamp" => m.ingestion_timestamp = opt_int(&mut map)?,
                "source_sequence" => m.source_sequence = opt_int(&mut map)?,
                "message_id" => m.message_id = opt_text(&mut map)?,
                "vendor_data" => m.vendor_data = map.next_value_seed(VendorSeed)?,
                "trade_id" if !quote => m.id = Some(text(&mut map)?),
                "side" if !quote => m.side = Some(one_of(text(&mut map)?, &SIDES)?),
                "trade_conditions" if !quote => {
                    m.trade_conditions = map.next_value_seed(StrListSeed)?
                }
                "price" if !quote => m.price = dec(&mut map, false)?,
                "quantity" if !quote => m.quantity = dec(&mut map, false)?,
                "quote_id" if quote => m.id = Some(text(&mut map)?),
                "bid_price" if quote => m.bid_price = dec(&mut map, true)?,
                "bid_quantity" if quote => m.bid_quantity = dec(&mut map, true)?,
                "ask_price" if quote => m.ask_price = dec(&mut map, true)?,
                "ask_quantity" if quote => m.ask_quantity = dec(&mut map, true)?,
                "one_sided" | "crossed" if quote => {
                    map.next_value::<bool>()?;
                }
                _ => unknown(&mut map)?,
            }
        }
        Ok(m)
    }
}

/// A string, borrowed from the message when it holds no escapes.
struct StrSeed;

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = Str<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Str<'de>, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

struct StrOwnedOrBorrowed<'a>(Str<'a>);

impl<'de> serde::Deserialize<'de> for StrOwnedOrBorrowed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StrSeed.deserialize(d).map(StrOwnedOrBorrowed)
    }
}

/// A list of strings (`trade_conditions`; null is not a list).
struct StrListSeed;

impl<'de> DeserializeSeed<'de> for StrListSeed {
    type Value = Vec<Str<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(StrListSeed)
    }
}

impl<'de> Visitor<'de> for StrListSeed {
    type Value = Vec<Str<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrSeed)? {
            items.push(item);
        }
        Ok(items)
    }
}

/// `vendor_data`: null or an object of strings; a repeated key keeps its first place and its last value, as a
/// Python dict does.
struct VendorSeed;

impl<'de> DeserializeSeed<'de> for VendorSeed {
    type Value = Option<Vec<(Str<'de>, Str<'de>)>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(VendorSeed)
    }
}

impl<'de> Visitor<'de> for VendorSeed {
    type Value = Option<Vec<(Str<'de>, Str<'de>)>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("null or an object of strings")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut items: Vec<(Str<'de>, Str<'de>)> = Vec::new();
        while let Some(key) = map.next_key_seed(StrSeed)? {
            let value = map.next_value_seed(StrSeed)?;
            match items.iter_mut().find(|(k, _)| *k == key) {
                Some(item) => item.1 = value,
                None => items.push((key, value)),
            }
        }
        Ok(Some(items))
    }
}

/// Nesting deeper than this (in brackets counted, strings included) is walked with serde_json's recursion limit.
const SHALLOW: usize = 64;

/// An unknown field's value: any JSON. Skipped as raw text (numbers of any size, as the exact path skips them);
/// walked in full only when it may hold a lone surrogate (an escape `\u`) or nest deeply, which the exact path
/// rejects (too deep: beyond its recursion limit) and a raw skip would let through.
fn unknown<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    let raw: &'de RawValue = map.next_value()?;
    let text = raw.get().as_bytes();
    let escaped = text.windows(2).any(|pair| pair == b"\\u");
    let brackets = text.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if escaped || brackets > SHALLOW {
        let mut walk = serde_json::Deserializer::from_str(raw.get());
        walk.deserialize_any(AnyJson).map_err(de::Error::custom)?;
    }
    Ok(())
}

/// Any JSON value, walked in full so its strings are checked as the exact path checks them (no lone surrogates).
struct AnyJson;

impl<'de> DeserializeSeed<'de> for AnyJson {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(AnyJson)
    }
}

impl<'de> Visitor<'de> for AnyJson {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(AnyJson)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(AnyJson)?.is_some() {
            map.next_value_seed(AnyJson)?;
        }
        Ok(())
    }
}
