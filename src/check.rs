//! `strata check FILE`: validate a policy file.
use std::path::Path;

use crate::Failure;

pub fn run(_file: &Path) -> Result<(), Failure> {
    Err(Failure::Runtime("not yet built".into()))
}
