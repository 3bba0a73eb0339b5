//! Reading the parts of a canonical method signature, `name(A,B<C,D>,(E,F))->R`: its
//! argument types and its return type, as spelled.
//!
//! A signature comes from a plugin's own descriptor: whatever it says, reading it
//! must not panic. A malformed one reads as having no arguments.

/// The argument types of `signature`.
pub fn arguments(signature: &str) -> Vec<&str> {
    split_top_level(argument_list(signature))
}

/// The number of arguments of `signature`, counted without allocating.
pub fn arity(signature: &str) -> usize {
    let inner = argument_list(signature);
    if inner.is_empty() {
        return 0;
    }
    let mut depth = 0i32;
    1 + inner
        .bytes()
        .filter(|&b| {
            match b {
                b'(' | b'<' | b'[' => depth += 1,
                b')' | b'>' | b']' => depth -= 1,
                _ => {}
            }
            b == b',' && depth == 0
        })
        .count()
}

/// The return type of `signature`, as spelled (empty for none).
pub fn returns(signature: &str) -> &str {
    signature[returns_at(signature)..].trim_start_matches("->")
}

/// What stands between the signature's parentheses; empty when it is malformed.
fn argument_list(signature: &str) -> &str {
    let Some(open) = signature.find('(') else {
        return "";
    };
    signature
        .get(open + 1..returns_at(signature).saturating_sub(1))
        .unwrap_or("")
}

/// Index just past the argument list's closing parenthesis (or the end).
fn returns_at(signature: &str) -> usize {
    let mut depth = 0i32;
    let start = signature.find('(').unwrap_or(0);
    for (i, &b) in signature.as_bytes().iter().enumerate().skip(start) {
        match b {
            b'(' | b'<' | b'[' => depth += 1,
            b')' | b'>' | b']' => {
                depth -= 1;
                if depth == 0 && b == b')' {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    signature.len()
}

/// Splits `a,b<c,d>,(e,f)` at the commas not nested in brackets.
fn split_top_level(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'(' | b'<' | b'[' => depth += 1,
            b')' | b'>' | b']' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_signatures_read_as_no_arguments_without_panicking() {
        for sig in [
            "f(", "f", "(", ")(", "f(((", "f()->", "", "f)(", "é(", "f(é",
        ] {
            let _ = (arity(sig), arguments(sig), returns(sig));
        }
        assert_eq!(arity("f(a,(b,c),Vec<(d,e)>)->x"), 3);
        assert_eq!(
            arguments("f(a,(b,c),Vec<(d,e)>)->x"),
            ["a", "(b,c)", "Vec<(d,e)>"]
        );
        assert_eq!(returns("f(a,(b,c),Vec<(d,e)>)->x"), "x");
        assert_eq!(arity("f()->x"), 0);
    }
}
