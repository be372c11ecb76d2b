//! Decimal numbers appended to an output buffer without the formatting
//! machinery, for the example servers that put lengths and integers in every
//! reply (included with `#[path = "support/decimal.rs"] mod decimal;`).
//! `write!` into a `Vec` costs about a tenth of `http_server`'s user time
//! per request; this is a few divisions and one copy.

/// Appends `n` in decimal to `out`.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}
