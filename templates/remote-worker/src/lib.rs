//! {{project-name}}: the actor types this app's workers serve. `src/main.rs` runs a worker that
//! joins a runtime; the tests in `tests/` call the actors on an in-process host with a virtual
//! clock, no runtime needed.

pub mod {{actor}};
