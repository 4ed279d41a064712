//! payment transitions of [`OrderRecord`].

use super::OrderRecord;

impl OrderRecord {}
