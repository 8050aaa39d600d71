//! `strata-control`: loads and watches policy and publishes it to the dataplane.
