//! Naming rules shared by parsing and emission: the default wire name of an actor type
//! (its Rust name in snake_case), the validity of wire names, and the generated identifiers
//! (proxy type, alarm setters, positional argument names).

use proc_macro2::Span;
use quote::format_ident;
use syn::Ident;

/// `Counter` -> `counter`, `MyActor` -> `my_actor`, `HTTPServer` -> `http_server`.
///
/// A word break goes before an uppercase letter that follows a lowercase letter or a digit,
/// and before the last uppercase letter of an acronym when a lowercase letter follows it.
pub fn snake_case(name: &str) -> String {
    let name = name.strip_prefix("r#").unwrap_or(name);
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let after_word = prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit());
            let ends_acronym =
                prev.is_some_and(char::is_uppercase) && next.is_some_and(char::is_lowercase);
            if (after_word || ends_acronym) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why `name` cannot be a wire name (of an actor type, method or alarm handler), if it cannot.
pub fn wire_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.contains('/') {
        Some("contains '/'")
    } else {
        None
    }
}

/// The proxy type generated for actor type `ty`: `Counter` -> `CounterProxy`.
pub fn proxy_ident(ty: &Ident) -> Ident {
    format_ident!("{}Proxy", ty, span = ty.span())
}

/// The proxy method that dispatches job `method`: `ship` -> `job_ship`.
pub fn job_dispatcher_ident(method: &Ident) -> Ident {
    format_ident!("job_{}", method, span = method.span())
}

/// The proxy method that starts an alarm for handler `method`: `tick` -> `alarm_tick`.
pub fn alarm_setter_ident(method: &Ident) -> Ident {
    format_ident!("alarm_{}", method, span = method.span())
}

/// The proxy's parameter names, one per actor-method parameter: the user's identifier (`None`
/// for patterns that are not plain identifiers), without leading underscores where that stays a
/// free, valid name (`_data` -> `data`); `arg{position}` for the rest. All distinct.
pub fn proxy_arg_idents(user: &[Option<Ident>]) -> Vec<Ident> {
    let mut taken: Vec<String> = user.iter().flatten().map(Ident::to_string).collect();
    let mut chosen = Vec::with_capacity(user.len());
    for (position, ident) in user.iter().enumerate() {
        let name = match ident {
            Some(ident) => {
                let text = ident.to_string();
                let trimmed = text.trim_start_matches('_');
                let free = !trimmed.is_empty()
                    && !taken.iter().any(|t| t == trimmed)
                    && syn::parse_str::<Ident>(trimmed).is_ok();
                if trimmed.len() < text.len() && free {
                    Ident::new(trimmed, ident.span())
                } else {
                    ident.clone()
                }
            }
            None => {
                let mut name = format!("arg{position}");
                while taken.contains(&name) {
                    name.insert(0, '_');
                }
                Ident::new(&name, Span::call_site())
            }
        };
        taken.push(name.to_string());
        chosen.push(name);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_follows_rust_naming() {
        assert_eq!(snake_case("Counter"), "counter");
        assert_eq!(snake_case("MyActor"), "my_actor");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("IoURing"), "io_u_ring");
        assert_eq!(snake_case("Actor2D"), "actor2_d");
        assert_eq!(snake_case("My_Actor"), "my_actor");
        assert_eq!(snake_case("r#Match"), "match");
        assert_eq!(snake_case("A"), "a");
    }

    #[test]
    fn wire_names_must_be_non_empty_without_slash() {
        assert_eq!(wire_name_problem("reset-all"), None);
        assert_eq!(wire_name_problem(""), Some("is empty"));
        assert_eq!(wire_name_problem("a/b"), Some("contains '/'"));
    }

    #[test]
    fn proxy_arg_names_are_distinct_and_readable() {
        let id = |s: &str| Some(Ident::new(s, Span::call_site()));
        let names = |user: &[Option<Ident>]| -> Vec<String> {
            proxy_arg_idents(user)
                .iter()
                .map(Ident::to_string)
                .collect()
        };
        assert_eq!(
            names(&[id("by"), None, id("_data")]),
            ["by", "arg1", "data"]
        );
        assert_eq!(names(&[None, id("arg0")]), ["_arg0", "arg0"]);
        assert_eq!(names(&[id("_a"), id("a")]), ["_a", "a"]);
        assert_eq!(names(&[id("_type"), id("_1")]), ["_type", "_1"]);
        assert_eq!(names(&[id("_x"), id("__x")]), ["x", "__x"]);
    }
}
