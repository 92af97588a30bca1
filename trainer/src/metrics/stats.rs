/// Median ignoring NaN (numpy's `nanmedian`: mean of the two middle values
/// for an even count); NaN when nothing is left. ±inf take part.
pub fn nanmedian(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("NaN filtered out"));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Arithmetic mean ignoring NaN; NaN when nothing is left.
pub fn mean(values: &[f64]) -> f64 {
    let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_like_numpy() {
        assert_eq!(nanmedian(&[3.0, f64::NAN, 1.0, 2.0]), 2.0);
        assert_eq!(nanmedian(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(nanmedian(&[f64::NAN]).is_nan());
        assert_eq!(nanmedian(&[f64::INFINITY, 1.0, 2.0]), 2.0);
        assert_eq!(mean(&[1.0, f64::NAN, 2.0]), 1.5);
    }
}
