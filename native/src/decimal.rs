//! Exact decimal(18,8) from decimal text: the digits are read as digits, never through a float.
//!
//! The grammar read here is the plain ASCII one: `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`.
//! Python's `Decimal` also reads other spellings (surrounding whitespace, `_` between digits, non-ASCII digits,
//! `NaN`/`Infinity`); those are `Unsure` here, and the message goes to the Python exact path, which decides.

/// A decimal(18,8) value: the number times 10^8, with |unscaled| < 10^18.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exact {
    Value(i64),
    /// A well-formed number that is not exact in decimal(18,8) (too large or with digits beyond the 8th place).
    Unfit,
    /// Not in the grammar read here (or an exponent too long to judge): the exact path decides.
    Unsure,
}

const SCALE: i64 = 8;
const PRECISION: i64 = 18;
/// Exponents with more digits than this are left to the exact path (Python reads any length).
const MAX_EXPONENT_DIGITS: usize = 6;

/// Whether `text[at]` is a minus, and where the digits start (after a sign, if any).
fn sign(text: &[u8], at: usize) -> (bool, usize) {
    match text.get(at) {
        Some(b'-') => (true, at + 1),
        Some(b'+') => (false, at + 1),
        _ => (false, at),
    }
}

pub fn parse(text: &[u8]) -> Exact {
    let (negative, mut i) = sign(text, 0);
    let int_start = i;
    while i < text.len() && text[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &text[int_start..i];
    let mut frac_digits: &[u8] = &[];
    if i < text.len() && text[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &text[frac_start..i];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Exact::Unsure;
    }
    let mut exponent: i64 = 0;
    if i < text.len() && (text[i] == b'e' || text[i] == b'E') {
        let (exp_negative, after_sign) = sign(text, i + 1);
        i = after_sign;
        let exp_start = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        let exp_digits = &text[exp_start..i];
        let significant = exp_digits.iter().skip_while(|&&d| d == b'0').count();
        if exp_digits.is_empty() || significant > MAX_EXPONENT_DIGITS {
            return Exact::Unsure;
        }
        for &d in exp_digits {
            exponent = exponent * 10 + i64::from(d - b'0');
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    if i != text.len() {
        return Exact::Unsure;
    }
    // value = digits * 10^(exponent - len(frac)), digits without leading or trailing zeros (read in place: this
    // runs for every decimal of every message, so no allocation).
    let digit = |k: usize| {
        if k < int_digits.len() {
            int_digits[k]
        } else {
            frac_digits[k - int_digits.len()]
        }
    };
    let total = int_digits.len() + frac_digits.len();
    let Some(first) = (0..total).find(|&k| digit(k) != b'0') else {
        return Exact::Value(0); // -0 is 0, as in Python
    };
    let last = (first..total)
        .rev()
        .find(|&k| digit(k) != b'0')
        .unwrap_or(first);
    let power = exponent - frac_digits.len() as i64 + (total - 1 - last) as i64;
    let length = (last - first + 1) as i64;
    let scaled_power = power + SCALE;
    if scaled_power < 0 || length + scaled_power > PRECISION {
        return Exact::Unfit;
    }
    let mut unscaled: i64 = 0;
    for k in first..=last {
        unscaled = unscaled * 10 + i64::from(digit(k) - b'0');
    }
    for _ in 0..scaled_power {
        unscaled *= 10;
    }
    Exact::Value(if negative { -unscaled } else { unscaled })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exact_values() {
        assert_eq!(parse(b"1.5"), Exact::Value(150_000_000));
        assert_eq!(parse(b"1e2"), Exact::Value(10_000_000_000));
        assert_eq!(parse(b"2."), Exact::Value(200_000_000));
        assert_eq!(parse(b".2"), Exact::Value(20_000_000));
        assert_eq!(parse(b"-0.0"), Exact::Value(0));
        assert_eq!(
            parse(b"9999999999.99999999"),
            Exact::Value(999_999_999_999_999_999)
        );
        assert_eq!(parse(b"1.000000000000"), Exact::Value(100_000_000));
        assert_eq!(parse(b"0.00000001"), Exact::Value(1));
        assert_eq!(parse(b"-3"), Exact::Value(-300_000_000));
    }

    #[test]
    fn tells_unfit_from_unsure() {
        assert_eq!(parse(b"10000000000"), Exact::Unfit);
        assert_eq!(parse(b"0.000000001"), Exact::Unfit);
        assert_eq!(parse(b"1e400"), Exact::Unfit);
        assert_eq!(parse(b"0e99999999999"), Exact::Unsure);
        assert_eq!(parse(b" 1"), Exact::Unsure);
        assert_eq!(parse(b"1_0"), Exact::Unsure);
        assert_eq!(parse(b"NaN"), Exact::Unsure);
        assert_eq!(parse(b""), Exact::Unsure);
        assert_eq!(parse(b"."), Exact::Unsure);
        assert_eq!(parse(b"1e"), Exact::Unsure);
    }
}
