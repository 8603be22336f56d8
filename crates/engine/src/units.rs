//! Sizes and rates as people read them, the same in the CLI, the tray and the
//! window: decimal units, like browsers and curl (1 kB = 1000 B).

/// A byte count: `999 B`, `1.5 kB`, `2.5 GB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Bytes per second: `1.2 MB/s` (negative rates read as zero).
pub fn human_rate(bytes_per_sec: f64) -> String {
    format!("{}/s", human_bytes(bytes_per_sec.max(0.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rates_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(5_000_000), "5.0 MB");
        assert_eq!(human_rate(2_500_000.0), "2.5 MB/s");
        assert_eq!(human_rate(-1.0), "0 B/s");
    }
}
