//! Scenario files for podid: the data model, the loader (YAML with positions) and the validator
//! that turns every mistake into a `file:line:col` message with a hint.
//!
//! ```no_run
//! let files = podid_scenario::discover(&["scenarios".into()]).unwrap();
//! let (scenarios, problems) = podid_scenario::load_all(&files);
//! assert!(problems.is_empty());
//! println!("{} scenarios", scenarios.len());
//! ```

pub mod duration;
pub mod load;
pub mod located;
pub mod model;
pub mod problem;
pub mod reference;
pub mod schema;
pub mod validate;

pub use duration::HumanDuration;
pub use load::{ScenarioFile, discover, load_all, load_file, load_str};
pub use located::{Located, Position};
pub use model::*;
pub use problem::{FileProblems, Problem, render_plain};
pub use schema::schema_json;
