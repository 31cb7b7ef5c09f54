//! Reports: paper-layout Markdown tables, CSV tables and plotters figures of a results
//! folder. Reads files only; knows nothing of sampling.

mod build;
pub mod claims;
pub mod compare;
pub mod differences;
pub mod figures;
pub mod findings;
pub mod low_nfe;
pub mod samplers;
pub mod tables;

pub use build::{report, ReportSummary};
pub use compare::{compare, splice_readme, Comparison};
