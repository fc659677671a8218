//! JSON Schema to GBNF, following llama.cpp's `json-schema-to-grammar`
//! conventions (its primitive rules, rule names `root`, `name-prop`,
//! `name-prop-kv`, `name-item`, `space` between tokens, rules sorted by
//! name), for the subset issue 20 asks for: objects with `properties` and
//! `required` (no additional properties), strings (with `enum`, `const`,
//! `minLength`/`maxLength` or a `pattern` of literals, classes, `.`,
//! groups, `|` and quantifiers), numbers, integers, booleans, null,
//! arrays with `items`, `minItems`/`maxItems`, and `anyOf`/`oneOf`. Anything
//! else is refused with a message rather than approximated.
use serde_json::Value;
use std::collections::BTreeMap;

const SPACE: &str = r#"| " " | "\n"{1,2} [ \t]{0,20}"#;

fn primitive(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match name {
        "boolean" => (r#"("true" | "false")"#, &[]),
        "decimal-part" => ("[0-9]{1,16}", &[]),
        "integral-part" => ("[0] | [1-9] [0-9]{0,15}", &[]),
        "number" => (
            r#"("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?"#,
            &["integral-part", "decimal-part"],
        ),
        "integer" => (r#"("-"? integral-part)"#, &["integral-part"]),
        "char" => (
            r#"[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})"#,
            &[],
        ),
        "string" => (r#""\"" char* "\"""#, &["char"]),
        "null" => (r#""null""#, &[]),
        _ => return None,
    })
}

/// A GBNF string literal of `s` (llama.cpp's `format_literal`).
fn literal(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '\r' => o.push_str("\\r"),
            '\n' => o.push_str("\\n"),
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            _ => o.push(c),
        }
    }
    o.push('"');
    o
}

/// llama.cpp's `build_repetition`.
fn repetition(item: &str, min: u64, max: Option<u64>, sep: &str) -> String {
    if max == Some(0) {
        return String::new();
    }
    if min == 0 && max == Some(1) {
        return format!("{item}?");
    }
    if sep.is_empty() {
        return match (min, max) {
            (1, None) => format!("{item}+"),
            (0, None) => format!("{item}*"),
            (m, None) => format!("{item}{{{m},}}"),
            (m, Some(x)) => format!("{item}{{{m},{x}}}"),
        };
    }
    let rest = repetition(
        &format!("({sep} {item})"),
        min.saturating_sub(1),
        max.map(|x| x - 1),
        "",
    );
    let r = format!("{item} {rest}");
    if min == 0 {
        format!("({r})?")
    } else {
        r
    }
}

#[derive(Default)]
struct Converter {
    rules: BTreeMap<String, String>,
}

impl Converter {
    fn add(&mut self, name: &str, body: String) -> String {
        let esc: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if self.rules.get(&esc).is_none_or(|b| *b == body) {
            self.rules.insert(esc.clone(), body);
            return esc;
        }
        let mut i = 0;
        while self
            .rules
            .get(&format!("{esc}{i}"))
            .is_some_and(|b| *b != body)
        {
            i += 1;
        }
        let n = format!("{esc}{i}");
        self.rules.insert(n.clone(), body);
        n
    }

    fn prim(&mut self, name: &str) -> String {
        let (body, deps) = primitive(name).expect("a primitive");
        for d in deps {
            self.prim(d);
        }
        self.add(name, body.to_string())
    }

    fn visit(&mut self, s: &Value, name: &str) -> Result<String, String> {
        let rule = if name.is_empty() { "root" } else { name };
        let sub = if name.is_empty() {
            String::new()
        } else {
            format!("{name}-")
        };
        let o = s
            .as_object()
            .ok_or_else(|| format!("{rule}: a schema must be an object"))?;
        for k in o.keys() {
            let known = [
                "type",
                "properties",
                "required",
                "items",
                "minItems",
                "maxItems",
                "enum",
                "const",
                "anyOf",
                "oneOf",
                "pattern",
                "minLength",
                "maxLength",
                "additionalProperties",
                "description",
                "title",
                "$schema",
                "$id",
                "default",
                "examples",
            ];
            if !known.contains(&k.as_str()) {
                return Err(format!("{rule}: '{k}' is not supported"));
            }
        }
        if let Some(alts) = o.get("anyOf").or_else(|| o.get("oneOf")) {
            let alts = alts
                .as_array()
                .ok_or_else(|| format!("{rule}: anyOf must be a list"))?;
            let prefix = if name.is_empty() {
                "alternative-".to_string()
            } else {
                sub.clone()
            };
            let mut names = Vec::new();
            for (i, a) in alts.iter().enumerate() {
                names.push(self.visit(a, &format!("{prefix}{i}"))?);
            }
            return Ok(self.add(rule, names.join(" | ")));
        }
        if let Some(c) = o.get("const") {
            return Ok(self.add(rule, literal(&c.to_string())));
        }
        if let Some(e) = o.get("enum") {
            let vals = e
                .as_array()
                .ok_or_else(|| format!("{rule}: enum must be a list"))?;
            let lits: Vec<String> = vals.iter().map(|v| literal(&v.to_string())).collect();
            return Ok(self.add(rule, format!("({})", lits.join(" | "))));
        }
        let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
        match ty {
            "object" => {
                match o.get("additionalProperties") {
                    None | Some(Value::Bool(false)) => {}
                    _ => return Err(format!("{rule}: additionalProperties is not supported")),
                }
                let empty = serde_json::Map::new();
                let props = match o.get("properties") {
                    Some(p) => p
                        .as_object()
                        .ok_or_else(|| format!("{rule}: properties must be an object"))?,
                    None => &empty,
                };
                let required: Vec<&str> = o
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let (mut req, mut opt) = (Vec::new(), Vec::new());
                for (k, v) in props {
                    let pr = self.visit(v, &format!("{sub}{k}"))?;
                    let kv = self.add(
                        &format!("{sub}{k}-kv"),
                        format!(
                            "{} space \":\" space {pr}",
                            literal(&Value::String(k.clone()).to_string())
                        ),
                    );
                    if required.contains(&k.as_str()) {
                        req.push(kv);
                    } else {
                        opt.push((k.clone(), kv));
                    }
                }
                if req.is_empty() && opt.is_empty() {
                    return Ok(self.add(rule, "\"{\" space \"}\"".into()));
                }
                let mut body = String::from("\"{\" space ");
                body += &req.join(" \",\" space ");
                if !opt.is_empty() {
                    body += " (";
                    if !req.is_empty() {
                        body += " \",\" space ( ";
                    }
                    let alts: Vec<String> = (0..opt.len())
                        .map(|i| self.optional_chain(&opt[i..], false, &sub))
                        .collect();
                    body += &alts.join(" | ");
                    if !req.is_empty() {
                        body += " )";
                    }
                    body += " )?";
                }
                body += " space \"}\"";
                self.add("space", SPACE.into());
                Ok(self.add(rule, body))
            }
            "array" => {
                let item = match o.get("items") {
                    Some(i) => self.visit(i, &format!("{sub}item"))?,
                    None => return Err(format!("{rule}: an array needs items")),
                };
                let min = o.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                let max = o.get("maxItems").and_then(Value::as_u64);
                self.add("space", SPACE.into());
                let body = format!(
                    "\"[\" space {} space \"]\"",
                    repetition(&item, min, max, "\",\" space")
                );
                Ok(self.add(rule, body))
            }
            "string" => {
                if let Some(p) = o.get("pattern") {
                    let p = p
                        .as_str()
                        .ok_or_else(|| format!("{rule}: pattern must be a string"))?;
                    let body = pattern(p).map_err(|e| format!("{rule}: pattern {p:?}: {e}"))?;
                    return Ok(self.add(rule, format!("\"\\\"\" {body} \"\\\"\"")));
                }
                let min = o.get("minLength").and_then(Value::as_u64).unwrap_or(0);
                let max = o.get("maxLength").and_then(Value::as_u64);
                if min > 0 || max.is_some() {
                    let c = self.prim("char");
                    return Ok(self.add(
                        rule,
                        format!("\"\\\"\" {} \"\\\"\"", repetition(&c, min, max, "")),
                    ));
                }
                let r = self.prim("string");
                Ok(if name.is_empty() {
                    self.add("root", r)
                } else {
                    self.add(rule, r)
                })
            }
            "number" | "integer" | "boolean" | "null" => {
                let r = self.prim(ty);
                Ok(self.add(rule, r))
            }
            "" => Err(format!(
                "{rule}: a schema needs a type (or enum, const, anyOf)"
            )),
            t => Err(format!("{rule}: type '{t}' is not supported")),
        }
    }

    /// llama.cpp's chain of optional properties: each may follow the ones
    /// before it.
    fn optional_chain(
        &mut self,
        ks: &[(String, String)],
        first_optional: bool,
        sub: &str,
    ) -> String {
        let (k, kv) = &ks[0];
        let mut res = if first_optional {
            format!("( \",\" space {kv} )?")
        } else {
            kv.clone()
        };
        if ks.len() > 1 {
            let rest = self.optional_chain(&ks[1..], true, sub);
            let r = self.add(&format!("{sub}{k}-rest"), rest);
            res = format!("{res} {r}");
        }
        res
    }
}

/// A regular expression of literals, classes, `.`, groups, `|` and
/// quantifiers (anchored: `^` and `$` at the ends are dropped) as GBNF.
fn pattern(p: &str) -> Result<String, String> {
    let p = p.strip_prefix('^').unwrap_or(p);
    let p = p.strip_suffix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    let out = alternation(&chars, &mut i, 0)?;
    if i != chars.len() {
        return Err(format!("unexpected '{}' at {i}", chars[i]));
    }
    Ok(out)
}

fn alternation(c: &[char], i: &mut usize, depth: usize) -> Result<String, String> {
    if depth > 64 {
        return Err("nested too deep".into());
    }
    let mut alts = vec![sequence(c, i, depth)?];
    while *i < c.len() && c[*i] == '|' {
        *i += 1;
        alts.push(sequence(c, i, depth)?);
    }
    Ok(alts.join(" | "))
}

fn esc_char(ch: char, in_class: bool) -> String {
    match ch {
        '"' => "\\\"".into(),
        '\\' => "\\\\".into(),
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        ']' | '-' | '[' | '^' if in_class => format!("\\{ch}"),
        _ => ch.to_string(),
    }
}

fn sequence(c: &[char], i: &mut usize, depth: usize) -> Result<String, String> {
    let mut items: Vec<String> = Vec::new();
    while *i < c.len() && c[*i] != '|' && c[*i] != ')' {
        let atom = match c[*i] {
            '(' => {
                *i += 1;
                if c.get(*i..*i + 2) == Some(&['?', ':']) {
                    *i += 2;
                }
                let inner = alternation(c, i, depth + 1)?;
                if c.get(*i) != Some(&')') {
                    return Err("unclosed group".into());
                }
                *i += 1;
                format!("({inner})")
            }
            '[' => {
                let start = *i;
                *i += 1;
                let mut s = String::from("[");
                if c.get(*i) == Some(&'^') {
                    s.push('^');
                    *i += 1;
                }
                while *i < c.len() && c[*i] != ']' {
                    if c[*i] == '\\' {
                        *i += 1;
                        let e = *c.get(*i).ok_or("a trailing backslash")?;
                        s += &match e {
                            'd' => "0-9".to_string(),
                            'w' => "a-zA-Z0-9_".to_string(),
                            's' => " \\t\\n\\r".to_string(),
                            'n' => "\\n".into(),
                            't' => "\\t".into(),
                            'r' => "\\r".into(),
                            _ => esc_char(e, true),
                        };
                    } else if c[*i] == '-' {
                        s.push('-');
                    } else {
                        s += &esc_char(c[*i], true);
                    }
                    *i += 1;
                }
                if *i == c.len() {
                    return Err(format!("unclosed class at {start}"));
                }
                *i += 1;
                s.push(']');
                s
            }
            '.' => {
                *i += 1;
                "[^\\n]".into()
            }
            '\\' => {
                *i += 1;
                let e = *c.get(*i).ok_or("a trailing backslash")?;
                *i += 1;
                match e {
                    'd' => "[0-9]".into(),
                    'w' => "[a-zA-Z0-9_]".into(),
                    's' => "[ \\t\\n\\r]".into(),
                    'n' => "\"\\n\"".into(),
                    't' => "\"\\t\"".into(),
                    _ if e.is_ascii_alphanumeric() => {
                        return Err(format!("\\{e} is not supported"))
                    }
                    _ => format!("\"{}\"", esc_char(e, false)),
                }
            }
            '*' | '+' | '?' | '{' => {
                return Err(format!("a quantifier with nothing before it at {}", *i))
            }
            '^' | '$' => return Err("anchors inside the pattern are not supported".into()),
            ch => {
                *i += 1;
                format!("\"{}\"", esc_char(ch, false))
            }
        };
        // A quantifier applies to the atom just read.
        let q = match c.get(*i) {
            Some('*') => {
                *i += 1;
                "*".to_string()
            }
            Some('+') => {
                *i += 1;
                "+".to_string()
            }
            Some('?') => {
                *i += 1;
                "?".to_string()
            }
            Some('{') => {
                let end = c[*i..].iter().position(|&x| x == '}').ok_or("unclosed {")? + *i;
                let body: String = c[*i + 1..end].iter().collect();
                let ok = !body.is_empty() && body.chars().all(|x| x.is_ascii_digit() || x == ',');
                if !ok {
                    return Err(format!("bad repetition {{{body}}}"));
                }
                *i = end + 1;
                format!("{{{body}}}")
            }
            _ => String::new(),
        };
        items.push(format!("{atom}{q}"));
    }
    Ok(if items.is_empty() {
        "\"\"".into()
    } else {
        items.join(" ")
    })
}

/// The GBNF grammar of `schema` (JSON text), or why it is refused.
pub fn to_gbnf(schema: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(schema).map_err(|e| format!("not JSON: {e}"))?;
    let mut c = Converter::default();
    c.visit(&v, "")?;
    Ok(c.rules
        .iter()
        .map(|(k, v)| format!("{k} ::= {v}\n"))
        .collect())
}
