//! HTTVPS client SDK (being written).
