//! Numbers as the pictures, the report and the terminal table write them.

/// A signed number with three decimals, or in scientific notation when that would hide it.
pub(super) fn fmt_signed(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e4).contains(&a) { format!("{v:+.2e}") } else { format!("{v:+.3}") }
}

/// [`fmt_signed`] with a typographic minus sign, for pictures.
pub(super) fn fmt_signed_pretty(v: f64) -> String {
    fmt_signed(v).replacen('-', "\u{2212}", 1)
}

/// A non-negative number with four significant decimals or scientific notation.
pub(super) fn fmt_plain(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) { format!("{v:.3e}") } else { format!("{v:.4}") }
}

/// A p-value, with small ones written as an upper bound.
pub(super) fn fmt_p(p: f64) -> String {
    if !p.is_finite() {
        "n/a".to_string()
    } else if p < 1e-3 {
        "<0.001".to_string()
    } else {
        format!("{p:.3}")
    }
}
