//! Reading the JWKS a policy holds and checking that it holds public keys only.
//! Parsing the keys themselves is the `crypto` module's job.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

/// JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1;
/// RFC 8037 §2 reuses `d`).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A JWKS of public keys is a few KiB; anything this large is not one.
const MAX_JWKS_BYTES: u64 = 1024 * 1024;

/// Reads `path` and checks it as a JWKS (see [`check`]).
pub(super) fn read_file(path: &Path) -> Result<Value, Vec<String>> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| vec![format!("cannot read JWKS file `{shown}`: {e}")])?;
    let mut bytes = Vec::new();
    file.take(MAX_JWKS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| vec![format!("cannot read JWKS file `{shown}`: {e}")])?;
    if bytes.len() as u64 > MAX_JWKS_BYTES {
        return Err(vec![format!(
            "JWKS file `{shown}` is larger than {MAX_JWKS_BYTES} bytes"
        )]);
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| vec![format!("JWKS file `{shown}` is not valid JSON: {e}")])?;
    check(&value).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| format!("JWKS file `{shown}`: {p}"))
            .collect::<Vec<_>>()
    })?;
    Ok(value)
}

/// Parses an inline JWKS string and checks it (see [`check`]).
pub(super) fn parse_inline(text: &str) -> Result<Value, Vec<String>> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| vec![format!("inline JWKS is not valid JSON: {e}")])?;
    check(&value).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| format!("inline JWKS: {p}"))
            .collect::<Vec<_>>()
    })?;
    Ok(value)
}

/// A JWKS must be a JSON object with a non-empty `keys` array whose entries are objects with
/// a string `kty` and no private member. Returns every problem found.
fn check(value: &Value) -> Result<(), Vec<String>> {
    let Some(obj) = value.as_object() else {
        return Err(vec!["must be a JSON object with a `keys` array".to_owned()]);
    };
    let Some(keys) = obj.get("keys").and_then(Value::as_array) else {
        return Err(vec!["must have a `keys` array".to_owned()]);
    };
    if keys.is_empty() {
        return Err(vec!["`keys` is empty".to_owned()]);
    }
    let mut problems = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(key) = key.as_object() else {
            problems.push(format!("key {i} is not a JSON object"));
            continue;
        };
        let name = match key.get("kid").and_then(Value::as_str) {
            Some(kid) => format!("key {i} (kid `{kid}`)"),
            None => format!("key {i}"),
        };
        if !key.get("kty").is_some_and(Value::is_string) {
            problems.push(format!("{name} has no string `kty`"));
        }
        let private: Vec<String> = PRIVATE_MEMBERS
            .iter()
            .filter(|m| key.contains_key(**m))
            .map(|m| format!("`{m}`"))
            .collect();
        if !private.is_empty() {
            problems.push(format!(
                "{name} carries private member {}: the policy must hold only public keys",
                private.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
