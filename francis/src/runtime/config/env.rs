//! `${NAME}` expansion in string values: each reference is replaced by the variable's value,
//! `$${` stands for a literal `${`, and an unset variable is a problem.

/// Replaces each `${NAME}` with the variable's value; `$${` stands for a literal `${`.
/// Returns the expanded text and the variable names used, or a message naming the problem.
pub(super) fn expand_env(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(input.len());
    let mut vars = Vec::new();
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                return Err(
                    "has an unterminated ${ (expected ${NAME}; write $${ for a literal ${)".into(),
                );
            };
            let name = &tail[..end];
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "has an invalid environment reference ${{{name}}}: names are letters, digits \
                     and '_' (write $${{ for a literal ${{)"
                ));
            }
            match env(name) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(format!(
                        "refers to the environment variable {name}, which is not set; set it \
                         before starting the runtime, or write the value in the file"
                    ));
                }
            }
            vars.push(name.to_owned());
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok((out, vars))
}
