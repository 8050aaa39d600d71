//! `strata-dataplane`: the packet path.
