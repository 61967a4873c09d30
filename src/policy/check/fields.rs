//! The checker's value-level rules: each reads one field (a name, an issuer URL, a
//! resource reference, actions, algorithms, a duration, a JWKS file), records what is wrong
//! with its position and field path, and returns what it could make of it.

use super::*;

impl Checker<'_> {
    // ----- values ----------------------------------------------------------------------------

    /// Records `Err` at `span`; passes `Ok` through.
    pub(super) fn ok<T>(
        &mut self,
        result: Result<T, String>,
        span: &Range<usize>,
        field: &str,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.sink.error(span, field, message);
                None
            }
        }
    }

    /// An identifier: `[A-Za-z0-9._-]+`.
    pub(super) fn ident(&mut self, v: &Spanned<String>, field: &str) {
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            self.sink.error(
                &v.span(),
                field,
                format!("`{s}` is not an identifier: use letters, digits, `.`, `_` and `-`"),
            );
        }
    }

    /// A free-form name (owner, group, claim, channel id, client id, subject).
    pub(super) fn name(&mut self, v: &Spanned<String>, field: &str) {
        let result = valid_name(v.get_ref());
        self.ok(result, &v.span(), field);
    }

    /// An optional name with a default.
    pub(super) fn name_or(
        &mut self,
        v: Option<&Spanned<String>>,
        field: &str,
        default: &str,
    ) -> String {
        match v {
            Some(v) => {
                self.name(v, field);
                v.get_ref().clone()
            }
            None => default.to_owned(),
        }
    }

    /// Records a duplicate of an earlier value in `seen` (value → line of first use).
    pub(super) fn unique(
        &mut self,
        seen: &mut HashMap<String, usize>,
        v: &Spanned<String>,
        field: &str,
        what: &str,
    ) {
        let (line, _) = self.sink.position(v.span().start);
        match seen.get(v.get_ref()) {
            Some(first) => self.sink.error(
                &v.span(),
                field,
                format!("duplicate {what} `{}` (first on line {first})", v.get_ref()),
            ),
            None => {
                seen.insert(v.get_ref().clone(), line);
            }
        }
    }

    /// Like [`Checker::unique`] for issuers, naming the element that declared it first.
    pub(super) fn unique_issuer(
        &mut self,
        seen: &mut HashMap<String, (String, usize)>,
        v: &Spanned<String>,
        field: &str,
        section: &str,
        owner: &str,
    ) {
        let (line, _) = self.sink.position(v.span().start);
        match seen.get(v.get_ref()) {
            Some((first, first_line)) => self.sink.error(
                &v.span(),
                field,
                format!(
                    "issuer `{}` is already declared by {section} `{first}` (line {first_line})",
                    v.get_ref()
                ),
            ),
            None => {
                seen.insert(v.get_ref().clone(), (owner.to_owned(), line));
            }
        }
    }

    /// An issuer: absolute `https` URL (or `http` on a loopback host, or anywhere when
    /// `allow_insecure_http`), with no credentials, query or fragment.
    pub(super) fn issuer_url(&mut self, v: &Spanned<String>, field: &str, http: Http) {
        let result = valid_issuer(v.get_ref(), http);
        self.ok(result, &v.span(), field);
    }

    /// A resource identifier (RFC 8707 §2): an absolute URI without a fragment.
    pub(super) fn resource_uri(&mut self, v: &Spanned<String>, field: &str) {
        let s = v.get_ref();
        let result = match url::Url::parse(s) {
            Err(e) => Err(format!("`{s}` is not an absolute URI: {e}")),
            Ok(u) if u.fragment().is_some() => Err(format!(
                "`{s}` has a fragment; a resource URI must not (RFC 8707 §2)"
            )),
            Ok(_) => Ok(()),
        };
        self.ok(result, &v.span(), field);
    }

    /// A reference to a declared resource; returns its actions when they are known.
    pub(super) fn resource_ref<'k>(
        &mut self,
        v: &Spanned<String>,
        field: &str,
        known: &'k Known,
    ) -> Option<&'k HashSet<String>> {
        match known.resources.get(v.get_ref()) {
            Some(actions) => actions.as_ref(),
            None => {
                self.sink.error(
                    &v.span(),
                    field,
                    format!(
                        "unknown resource `{}` (no [[resource]] has this uri)",
                        v.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// A resource's own `actions`: non-empty, unique, `[A-Za-z0-9._:-]+`.
    pub(super) fn defined_actions(&mut self, list: &SpannedList, field: &str) -> Vec<String> {
        if list.get_ref().is_empty() {
            self.sink
                .error(&list.span(), field, "must define at least one action");
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, action) in list.get_ref().iter().enumerate() {
            let a = action.get_ref();
            let f = format!("{field}[{i}]");
            let ok = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
            if !ok {
                self.sink.error(
                    &action.span(),
                    f,
                    format!(
                        "`{a}` is not an action name: use letters, digits, `.`, `_`, `:` and `-`"
                    ),
                );
            } else if !seen.insert(a.as_str()) {
                self.sink
                    .error(&action.span(), f, format!("duplicate action `{a}`"));
            } else {
                out.push(a.clone());
            }
        }
        out
    }

    /// Actions granted on a resource: non-empty, unique, each defined by the resource
    /// (`defined` is `None` when the resource is unknown or unreadable: already reported).
    pub(super) fn granted_actions(
        &mut self,
        list: &SpannedList,
        field: &str,
        defined: Option<&HashSet<String>>,
        resource: &Spanned<String>,
    ) -> Vec<String> {
        if list.get_ref().is_empty() {
            self.sink
                .error(&list.span(), field, "must name at least one action");
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, action) in list.get_ref().iter().enumerate() {
            let a = action.get_ref();
            let f = format!("{field}[{i}]");
            if !seen.insert(a.as_str()) {
                self.sink
                    .error(&action.span(), f, format!("duplicate action `{a}`"));
                continue;
            }
            if defined.is_some_and(|d| !d.contains(a)) {
                self.sink.error(
                    &action.span(),
                    f,
                    format!(
                        "action `{a}` is not defined by resource `{}`",
                        resource.get_ref()
                    ),
                );
            }
            out.push(a.clone());
        }
        out
    }

    /// `algorithms`: non-empty, unique, asymmetric, known.
    pub(super) fn algorithms(&mut self, list: &SpannedList, field: &str) -> Vec<Algorithm> {
        if list.get_ref().is_empty() {
            self.sink
                .error(&list.span(), field, "must name at least one algorithm");
        }
        let mut out = Vec::new();
        for (i, alg) in list.get_ref().iter().enumerate() {
            let name = alg.get_ref();
            let f = format!("{field}[{i}]");
            match Algorithm::from_jose(name) {
                Some(a) if out.contains(&a) => {
                    self.sink
                        .error(&alg.span(), f, format!("duplicate algorithm `{name}`"));
                }
                Some(a) => out.push(a),
                None => {
                    let message = if name.eq_ignore_ascii_case("none") {
                        "`none` is never accepted: tokens must be signed".to_owned()
                    } else if name.len() >= 2
                        && name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS"))
                    {
                        format!(
                            "`{name}` is a shared-secret (HMAC) algorithm and is never accepted: \
                             use an asymmetric one"
                        )
                    } else {
                        format!(
                            "unknown algorithm `{name}`, expected one of {}",
                            Algorithm::ALL.map(Algorithm::as_str).join(", ")
                        )
                    };
                    self.sink.error(&alg.span(), f, message);
                }
            }
        }
        out
    }

    /// A token lifetime in 30s..=1h, or `default`.
    pub(super) fn ttl(
        &mut self,
        v: Option<&Spanned<String>>,
        field: &str,
        default: Duration,
    ) -> Duration {
        match v {
            None => default,
            Some(v) => {
                let parsed = time::parse_bounded(v.get_ref(), MIN_TTL, MAX_TTL);
                self.ok(parsed, &v.span(), field).unwrap_or(default)
            }
        }
    }

    /// Reads and checks a JWKS file, relative to the policy file's directory.
    pub(super) fn jwks_file(&mut self, v: &Spanned<String>, field: &str) -> Option<StaticJwks> {
        if v.get_ref().is_empty() {
            self.sink.error(&v.span(), field, "must not be empty");
            return None;
        }
        let path = self.base_dir.join(v.get_ref());
        match jwks::read_file(&path) {
            Ok(jwks) => Some(StaticJwks {
                path: Some(path),
                jwks,
            }),
            Err(problems) => {
                for problem in problems {
                    self.sink.error(&v.span(), field, problem);
                }
                None
            }
        }
    }
}
