//! {{project-name}}: the actor types this app's hosts serve. `src/main.rs` runs a host; the
//! tests in `tests/` call the actors on an in-process host with a virtual clock.

pub mod {{actor}};
