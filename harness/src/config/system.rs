//! Systems of services: `depends_on`, `[links.NAME]`, and the `{port.NAME}`
//! and `{link.NAME}` placeholders that wire one service to another. Every
//! name they use must exist and the dependencies must not form a cycle; a
//! mistake is located at the name in the file.

use super::{Config, ConfigError, Probe, Request, suggest};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// What a link forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkTarget {
    /// A service of the config: its port, once the run has chosen it.
    Service(String),
    /// An address soak does not run, `host:port`.
    Address(String),
}

impl Config {
    /// Where `[links.name]` forwards to. Panics on a name the config lacks:
    /// callers take names from `self.links`.
    pub fn link_target(&self, name: &str) -> LinkTarget {
        let to = self.links[name].to.get_ref();
        if self.services.contains_key(to) {
            LinkTarget::Service(to.clone())
        } else {
            LinkTarget::Address(to.clone())
        }
    }

    /// The services that reach `[links.link]`: those whose command, env,
    /// probe or other templates name `{link.link}`. A fault on the link is a
    /// fault in what they depend on; they are the ones that must ride it out.
    pub fn dependents_of_link(&self, link: &str) -> Vec<String> {
        self.services
            .iter()
            .filter(|(_, s)| {
                service_templates(s)
                    .iter()
                    .any(|t| placeholders(t).any(|(kind, name)| kind == "link" && name == link))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The services in an order that starts each after everything it
    /// depends on; stopping goes the other way. Ties keep name order.
    pub fn start_order(&self) -> Vec<String> {
        let mut order: Vec<String> = Vec::new();
        while order.len() < self.services.len() {
            let before = order.len();
            for (name, s) in &self.services {
                if !order.contains(name) && s.depends_on.iter().all(|d| order.contains(d.get_ref()))
                {
                    order.push(name.clone());
                }
            }
            // `check` refused cycles, so every pass places at least one.
            debug_assert!(order.len() > before, "dependency cycle after validation");
            if order.len() == before {
                break;
            }
        }
        order
    }

    /// An error at this service's `command`, for what is found wrong with it
    /// after parsing (say, a program that does not exist).
    pub fn error_at_command(
        &self,
        service: &str,
        message: String,
        help: Option<String>,
    ) -> ConfigError {
        ConfigError::at_span(
            &self.path,
            &self.source,
            self.command_spans.get(service).cloned(),
            message,
            help,
        )
    }
}

/// Where each service's `command` value sits in `source`. Read with a second,
/// lenient pass so the public types need not carry spans.
pub(super) fn command_spans(source: &str) -> BTreeMap<String, Range<usize>> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        services: BTreeMap<String, ServiceSpans>,
    }
    #[derive(Deserialize)]
    struct ServiceSpans {
        command: Option<Spanned<toml::Value>>,
    }
    toml::from_str::<File>(source)
        .map(|f| {
            f.services
                .into_iter()
                .filter_map(|(name, s)| Some((name, s.command?.span())))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn check(config: &Config, path: &Path, source: &str) -> Result<(), ConfigError> {
    let at = |span: Range<usize>, message: String, help: Option<String>| {
        ConfigError::at_span(path, source, Some(span), message, help)
    };
    let services: Vec<&str> = config.services.keys().map(String::as_str).collect();
    let links: Vec<&str> = config.links.keys().map(String::as_str).collect();

    for (name, link) in &config.links {
        let to = link.to.get_ref();
        if !config.services.contains_key(to) && !is_address(to) {
            let help = if services.is_empty() {
                "give an address, e.g. \"127.0.0.1:5432\"".to_string()
            } else {
                format!(
                    "{} (or give an address, e.g. \"127.0.0.1:5432\")",
                    suggest(to, &services, "service")
                )
            };
            return Err(at(
                link.to.span(),
                format!(
                    "link `{name}` goes to `{to}`, which is neither a service of this config nor host:port"
                ),
                Some(help),
            ));
        }
    }

    for (name, s) in &config.services {
        for dep in &s.depends_on {
            if !config.services.contains_key(dep.get_ref()) {
                return Err(at(
                    dep.span(),
                    format!(
                        "`{name}` depends on `{}`, which is not defined",
                        dep.get_ref()
                    ),
                    Some(suggest(dep.get_ref(), &services, "service")),
                ));
            }
        }
    }
    if let Some((cycle, span)) = find_cycle(config) {
        return Err(at(
            span,
            format!("dependency cycle: {}", cycle.join(" → ")),
            Some("remove one of these `depends_on` entries".into()),
        ));
    }

    for t in templates(config) {
        for (kind, name) in placeholders(t) {
            let (known, what, table) = match kind {
                "port" => (&services, "service", "services"),
                _ => (&links, "link", "links"),
            };
            if !known.contains(&name) {
                let text = format!("{{{kind}.{name}}}");
                let start = source.find(&text).unwrap_or(0);
                let help = if known.is_empty() {
                    format!("define [{table}.{name}]")
                } else {
                    suggest(name, known, what)
                };
                return Err(at(
                    start..start + text.len(),
                    format!("`{text}` names {what} `{name}`, which is not defined"),
                    Some(help),
                ));
            }
        }
    }
    Ok(())
}

/// `host:port` with a numeric port; the host is resolved when the link starts.
fn is_address(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// The first cycle in `depends_on`, as names from where it closes, with the
/// span of the entry that closes it.
fn find_cycle(config: &Config) -> Option<(Vec<String>, Range<usize>)> {
    fn visit<'a>(
        config: &'a Config,
        name: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut Vec<&'a str>,
    ) -> Option<(Vec<String>, Range<usize>)> {
        if done.contains(&name) {
            return None;
        }
        path.push(name);
        for dep in &config.services[name].depends_on {
            let d = dep.get_ref().as_str();
            if let Some(i) = path.iter().position(|p| *p == d) {
                let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
                cycle.push(d.to_string());
                return Some((cycle, dep.span()));
            }
            if config.services.contains_key(d)
                && let Some(found) = visit(config, d, path, done)
            {
                return Some(found);
            }
        }
        path.pop();
        done.push(name);
        None
    }
    let mut done = Vec::new();
    config
        .services
        .keys()
        .find_map(|name| visit(config, name, &mut Vec::new(), &mut done))
}

/// The strings of one service in which placeholders expand.
fn service_templates(s: &super::Service) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    out.extend(s.command.0.iter().map(String::as_str));
    out.extend(s.args.iter().flat_map(|a| a.get_ref()).map(String::as_str));
    out.extend(s.env.values().map(String::as_str));
    out.extend(s.sqlite.iter().map(String::as_str));
    out.extend(s.pidfile.as_deref());
    if let Some(m) = &s.metrics {
        out.push(m.url.get_ref());
    }
    if let Some(h) = &s.health {
        match &h.probe {
            Probe::Http(u) | Probe::Tcp(u) => out.push(u),
            Probe::Exec(argv) => out.extend(argv.iter().map(String::as_str)),
        }
    }
    out
}

/// Every string of the config in which placeholders expand.
fn templates(config: &Config) -> Vec<&str> {
    let mut out: Vec<&str> = config
        .services
        .values()
        .flat_map(service_templates)
        .collect();
    for w in config.workloads.values() {
        for r in [&w.write, &w.read].into_iter().flatten() {
            match r {
                Request::Http {
                    url, body, headers, ..
                } => {
                    out.push(url);
                    out.extend(body.as_deref());
                    out.extend(headers.values().map(String::as_str));
                }
                Request::Exec { command, .. } => out.extend(command.iter().map(String::as_str)),
            }
        }
    }
    out
}

/// `{port.NAME}` and `{link.NAME}` in `s`, as ("port" | "link", NAME).
pub fn placeholders(s: &str) -> impl Iterator<Item = (&'static str, &str)> {
    s.match_indices('{').filter_map(move |(i, _)| {
        let rest = &s[i + 1..];
        let end = rest.find('}')?;
        let inner = &rest[..end];
        let (kind, name) = inner.split_once('.')?;
        let kind = match kind {
            "port" => "port",
            "link" => "link",
            _ => return None,
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        valid.then_some((kind, name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, String> {
        Config::parse(Path::new("/x/soak.toml"), s).map_err(|e| e.to_string())
    }

    const SYSTEM: &str = r#"
[services.store]
command = ["./store", "--port", "{port}"]
[services.gateway]
command = ["./gw", "--port", "{port}", "--store", "{link.store}", "--direct", "{port.store}"]
depends_on = ["store"]
[services.front]
command = ["./front", "--gw", "127.0.0.1:{port.gateway}"]
depends_on = ["gateway"]
[links.store]
to = "store"
[links.pg]
to = "127.0.0.1:5432"
"#;

    #[test]
    fn a_system_parses_and_starts_dependencies_first() {
        let c = parse(SYSTEM).unwrap();
        assert_eq!(c.start_order(), ["store", "gateway", "front"]);
        assert_eq!(c.link_target("store"), LinkTarget::Service("store".into()));
        assert_eq!(
            c.link_target("pg"),
            LinkTarget::Address("127.0.0.1:5432".into())
        );
    }

    #[test]
    fn independent_services_keep_name_order() {
        let c = parse("[services.b]\ncommand=[\"b\"]\n[services.a]\ncommand=[\"a\"]\n").unwrap();
        assert_eq!(c.start_order(), ["a", "b"]);
    }

    #[test]
    fn placeholders_are_found_and_json_braces_are_not() {
        let found: Vec<_> =
            placeholders(r#"{"k":"{key}"} {port.store} {link.up-1} {port.} {other.x}"#).collect();
        assert_eq!(found, [("port", "store"), ("link", "up-1")]);
    }

    fn wiring_error(s: &str) -> String {
        parse(s).expect_err("a wiring mistake is refused")
    }

    #[test]
    fn a_dependency_cycle_is_located_at_the_entry_that_closes_it() {
        insta::assert_snapshot!(wiring_error(
            "[services.a]\ncommand = [\"a\"]\ndepends_on = [\"b\"]\n\
             [services.b]\ncommand = [\"b\"]\ndepends_on = [\"c\"]\n\
             [services.c]\ncommand = [\"c\"]\ndepends_on = [\"a\"]\n"
        ));
    }

    #[test]
    fn a_service_that_depends_on_itself_is_a_cycle() {
        let e = wiring_error("[services.a]\ncommand = [\"a\"]\ndepends_on = [\"a\"]\n");
        assert!(e.contains("dependency cycle: a → a"), "{e}");
        assert!(e.contains("soak.toml:3:15"), "{e}");
    }

    #[test]
    fn an_unknown_dependency_is_located_and_corrected() {
        insta::assert_snapshot!(wiring_error(
            "[services.store]\ncommand = [\"s\"]\n\
             [services.gateway]\ncommand = [\"g\"]\ndepends_on = [\"stor\"]\n"
        ));
    }

    #[test]
    fn a_port_of_a_missing_service_is_located() {
        insta::assert_snapshot!(wiring_error(
            "[services.gateway]\ncommand = [\"g\", \"--store\", \"127.0.0.1:{port.store}\"]\n"
        ));
    }

    #[test]
    fn a_missing_link_is_located_and_corrected() {
        insta::assert_snapshot!(wiring_error(
            "[services.store]\ncommand = [\"s\"]\n\
             [services.gateway]\ncommand = [\"g\"]\nenv = { STORE = \"{link.stor}\" }\n\
             [links.store]\nto = \"store\"\n"
        ));
    }

    #[test]
    fn a_link_to_nothing_is_located() {
        insta::assert_snapshot!(wiring_error(
            "[services.store]\ncommand = [\"s\"]\n[links.db]\nto = \"postgres\"\n"
        ));
    }

    #[test]
    fn a_bad_keep_selector_is_located() {
        let e = wiring_error(
            "[services.api]\ncommand = [\"a\"]\n[services.api.metrics]\nurl = \"http://127.0.0.1:{port}/metrics\"\nkeep = [\"queue_depth\", \"lag{route=\"]\n",
        );
        assert!(
            e.contains("soak.toml:5:25") && e.contains("not a metric selector"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_metrics_address_says_what_an_address_looks_like() {
        let e = wiring_error("[harness]\nmetrics = \"localhost\"\n");
        assert!(e.contains("soak.toml:2:11"), "{e}");
        assert!(e.contains("127.0.0.1:9464"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn a_system_config_with_a_cut_or_splice_never_panics(
            at in 0usize..420, len in 0usize..40, insert in "[\\[\\]{}=\"',.a-z0-9 \n]{0,12}"
        ) {
            let mut s: Vec<char> = SYSTEM.chars().collect();
            let at = at.min(s.len());
            let end = (at + len).min(s.len());
            s.splice(at..end, insert.chars());
            let s: String = s.into_iter().collect();
            if let Ok(c) = Config::parse(Path::new("x.toml"), &s) {
                proptest::prop_assert_eq!(c.start_order().len(), c.services.len());
            }
        }
    }

    #[test]
    fn the_command_is_located_for_later_errors() {
        let c = parse(SYSTEM).unwrap();
        let e = c.error_at_command("gateway", "no such program".into(), None);
        assert_eq!(e.at, Some((5, 11)));
    }
}
