//! Per-instrument sequence checking over columns: the compiled twin of `k2.ingest.sequence.SequenceTracker`, which
//! stays the reference (the rules, and why, are written there). Same verdicts, same events, same state: the state
//! converts to and from the reference's plain containers, so a snapshot taken by one resumes in the other.
//!
//! Arithmetic on sequence numbers and times is done in i128, so sums and differences of any two int64 values
//! compare as Python's integers do.

use std::collections::HashMap;

/// A message's verdict; the numbers are `k2.ingest.sequence.SeqClass`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    InOrder = 0,
    Gap = 1,
    Duplicate = 2,
    Late = 3,
    Reset = 4,
    Unsequenced = 5,
}

/// One instrument's state in its current session (`_Instrument` in the reference).
#[derive(Clone, Debug, Default)]
pub struct Instrument {
    pub last: i64,
    pub max_ts: i64,
    pub session: i64,
    pub first: i64,
    pub gap_lo: Vec<i64>,
    pub gap_hi: Vec<i64>,
}

/// A gap or reset found at message `index` of a checked batch, before source positions are filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub index: usize,
    pub reset: bool,
    pub instrument: usize,
    pub session: i64,
    pub expected: i128,
    pub received: i64,
    pub missing: i128,
    pub timestamp: i64,
    pub previous_timestamp: i64,
}

/// The key of an instrument: (kind, exchange, symbol).
pub type Key = (String, String, String);

/// Instruments in first-seen order (the reference's dict order), looked up by kind, exchange and symbol without
/// building a key per message.
pub struct Tracker {
    pub reset_floor: i64,
    pub session_gap_us: i64,
    pub max_gap_ranges: usize,
    pub keys: Vec<Key>,
    pub states: Vec<Instrument>,
    index: HashMap<String, HashMap<String, HashMap<String, usize>>>,
}

/// One message of a batch: its sequence (None when unsequenced), exchange, symbol and event time.
pub struct Message<'a> {
    pub sequence: Option<i64>,
    pub exchange: &'a str,
    pub symbol: &'a str,
    pub timestamp: i64,
}

impl Tracker {
    pub fn new(reset_floor: i64, session_gap_us: i64, max_gap_ranges: usize) -> Self {
        Tracker {
            reset_floor,
            session_gap_us,
            max_gap_ranges,
            keys: Vec::new(),
            states: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub fn find(&self, kind: &str, exchange: &str, symbol: &str) -> Option<usize> {
        self.index.get(kind)?.get(exchange)?.get(symbol).copied()
    }

    /// Adds (or, for a known key, replaces) an instrument's state, keeping its first-seen position.
    pub fn insert(&mut self, key: Key, state: Instrument) -> usize {
        if let Some(i) = self.find(&key.0, &key.1, &key.2) {
            self.states[i] = state;
            return i;
        }
        let i = self.states.len();
        self.index
            .entry(key.0.clone())
            .or_default()
            .entry(key.1.clone())
            .or_default()
            .insert(key.2.clone(), i);
        self.keys.push(key);
        self.states.push(state);
        i
    }

    /// Classifies the messages of one kind in order; verdicts go to `classes`, gap and reset events to `events`.
    pub fn check<'a>(
        &mut self,
        kind: &str,
        messages: impl Iterator<Item = Message<'a>>,
        classes: &mut Vec<u8>,
        events: &mut Vec<Event>,
    ) {
        let mut recent: Option<(&'a str, &'a str, usize)> = None; // runs of one instrument skip the lookup
        for (index, m) in messages.enumerate() {
            let Some(seq) = m.sequence else {
                classes.push(Class::Unsequenced as u8);
                continue;
            };
            let found = match recent {
                Some((exchange, symbol, i)) if exchange == m.exchange && symbol == m.symbol => {
                    Some(i)
                }
                _ => self.find(kind, m.exchange, m.symbol),
            };
            let class = match found {
                Some(i) => {
                    recent = Some((m.exchange, m.symbol, i));
                    self.classify(i, index, seq, m.timestamp, events)
                }
                None => {
                    let key = (
                        kind.to_string(),
                        m.exchange.to_string(),
                        m.symbol.to_string(),
                    );
                    let i = self.insert(key, first_seen(seq, m.timestamp, 0));
                    recent = Some((m.exchange, m.symbol, i));
                    Class::InOrder
                }
            };
            classes.push(class as u8);
        }
    }

    fn classify(
        &mut self,
        i: usize,
        index: usize,
        seq: i64,
        ts: i64,
        events: &mut Vec<Event>,
    ) -> Class {
        let state = &mut self.states[i];
        let last = state.last as i128;
        let wide = seq as i128;
        if wide == last + 1 || wide > last {
            let class = if wide == last + 1 {
                Class::InOrder
            } else {
                events.push(event(
                    index,
                    false,
                    i,
                    state,
                    last + 1,
                    seq,
                    wide - last - 1,
                    ts,
                ));
                add_gap(state, self.max_gap_ranges, state.last + 1, seq - 1);
                Class::Gap
            };
            state.last = seq;
            if ts > state.max_ts {
                state.max_ts = ts;
            }
            return class;
        }
        let silent = (ts as i128) - (state.max_ts as i128) >= self.session_gap_us as i128;
        if ts > state.max_ts && (seq <= self.reset_floor || silent) {
            events.push(event(index, true, i, state, last + 1, seq, 0, ts));
            let session = state.session + 1;
            self.states[i] = first_seen(seq, ts, session);
            return Class::Reset;
        }
        if take_from_gaps(state, seq) {
            Class::Late
        } else {
            Class::Duplicate
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn event(
    index: usize,
    reset: bool,
    instrument: usize,
    state: &Instrument,
    expected: i128,
    received: i64,
    missing: i128,
    ts: i64,
) -> Event {
    Event {
        index,
        reset,
        instrument,
        session: state.session,
        expected,
        received,
        missing,
        timestamp: ts,
        previous_timestamp: state.max_ts,
    }
}

/// State after the first message of a session (`_first_seen` in the reference says why the numbers below it
/// are an open range that is not reported).
fn first_seen(seq: i64, ts: i64, session: i64) -> Instrument {
    let (gap_lo, gap_hi) = if seq > 0 {
        (vec![0], vec![seq - 1])
    } else {
        (Vec::new(), Vec::new())
    };
    Instrument {
        last: seq,
        max_ts: ts,
        session,
        first: seq,
        gap_lo,
        gap_hi,
    }
}

/// A new open range; the oldest is forgotten beyond `max_ranges` (the reference's bounded memory).
fn add_gap(state: &mut Instrument, max_ranges: usize, lo: i64, hi: i64) {
    state.gap_lo.push(lo);
    state.gap_hi.push(hi);
    if state.gap_lo.len() > max_ranges {
        state.gap_lo.remove(0);
        state.gap_hi.remove(0);
    }
}

/// Removes `seq` from the open ranges; false when it was not missing (a duplicate).
fn take_from_gaps(state: &mut Instrument, seq: i64) -> bool {
    let after = state.gap_lo.partition_point(|&lo| lo <= seq);
    if after == 0 || seq > state.gap_hi[after - 1] {
        return false;
    }
    let i = after - 1;
    let (lo, hi) = (state.gap_lo[i], state.gap_hi[i]);
    if lo == hi {
        state.gap_lo.remove(i);
        state.gap_hi.remove(i);
    } else if seq == lo {
        state.gap_lo[i] = seq + 1;
    } else if seq == hi {
        state.gap_hi[i] = seq - 1;
    } else {
        state.gap_hi[i] = seq - 1;
        state.gap_lo.insert(i + 1, seq + 1);
        state.gap_hi.insert(i + 1, hi);
    }
    true
}
