//! # exchange-core
//!
//! The domain types every Huitong crate shares, and the library store.
//!
//! - Identifiers that parse or fail: [`IdNumber`] (GB 11643 citizen ID, with the 15 → 18 digit
//!   upgrade), [`Uscc`] (GB 32100 unified social credit code) and [`RegionCode`] (GB/T 2260,
//!   down to 9-digit townships). Holding one means it is valid.
//! - The catalog's vocabularies ([`ShareType`], [`OpenType`], [`Sensitivity`], …) with their
//!   Chinese labels.
//! - Library schemas ([`schema::POPULATION`], …) and the [`Library`] store: a Delta table of
//!   record versions plus a serving index for key lookups; its [`history`]: records and the
//!   whole library as of a version or a time, and the net change between two versions; its
//!   [`snapshot`]: the current records in key order as an Arrow file, for bulk exports.
//! - Themed libraries' schemas (主题库), declared at run time and registered once
//!   ([`theme::register_theme`]); [`LibrarySchema::by_name`] finds them beside the base libraries.
//!
//! ```
//! use exchange_core::IdNumber;
//! let id = IdNumber::parse("１１０１０５４９１２３１００２").unwrap(); // full-width, 15 digits
//! assert_eq!(id.as_str(), "11010519491231002X");
//! ```
#![deny(missing_docs)]

pub mod domain;
mod error;
pub mod history;
pub mod id_number;
pub mod index;
mod index_changes;
pub mod lineage;
pub mod normalize;
pub mod region;
pub mod schema;
pub mod segment;
pub mod snapshot;
pub mod store;
pub mod theme;
pub mod uscc;

pub use domain::{OpenType, Sensitivity, ShareMethod, ShareType, UpdateCycle};
pub use error::{Error, Result};
pub use history::{Change, DiffPage, KeyChange, RecordOp, RecordVersion, RecordsAsOf};
pub use id_number::{IdNumber, IdNumberError};
pub use index::{IndexReader, RecordRef, StoredRecord};
pub use lineage::{Lineage, Origin};
pub use region::RegionCode;
pub use schema::{FieldKind, LibraryField, LibrarySchema};
pub use store::{Authority, CommitOutcome, Library, LibraryWriter, Upsert, WriteStats};
pub use theme::{ThemeDefinition, ThemeField};
pub use uscc::{Uscc, UsccError};
