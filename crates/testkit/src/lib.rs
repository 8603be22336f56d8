//! Test peers (being written).
