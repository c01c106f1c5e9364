//! The code of the Francis guide (`book/`). Each module holds the snippets of one chapter
//! between `ANCHOR` comments, which the book includes; the tests in `tests/` exercise what each
//! chapter says about them, so the book shows code that compiles and behaves as described.

pub mod alarms;
pub mod builtin;
pub mod calling;
pub mod jobs;
pub mod lifecycle;
pub mod methods;
pub mod options;
pub mod scheduled;
pub mod security;
pub mod singletons;
pub mod state;
