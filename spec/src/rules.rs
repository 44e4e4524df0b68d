//! Rules the schema cannot express: names Kubernetes will accept, values that agree with each other,
//! and nothing said twice. Each finding points at the node it is about.

use std::collections::HashSet;

use crate::diagnostic::{Diagnostic, Pos};
use crate::model::*;
use crate::yaml::{Node, Seg};

/// More pods than this from one spec is almost certainly a typo.
pub const MAX_REPLICAS: u32 = 100;

struct Findings<'a> {
    root: &'a Node,
    out: Vec<Diagnostic>,
}

impl Findings<'_> {
    /// Position of the node at `path`, or of its nearest ancestor that exists (defaults are absent).
    fn pos(&self, path: &[Seg]) -> Pos {
        (0..=path.len())
            .rev()
            .find_map(|n| self.root.at(&path[..n]))
            .map(|n| n.pos)
            .unwrap_or_default()
    }
    fn error(&mut self, path: &[Seg], message: impl Into<String>) {
        let pos = self.pos(path);
        self.out.push(Diagnostic::error(pos, message));
    }
    fn warn(&mut self, path: &[Seg], message: impl Into<String>) {
        let pos = self.pos(path);
        self.out.push(Diagnostic::warning(pos, message));
    }
}

macro_rules! p {
    ($($seg:expr),* $(,)?) => { &[$(Seg::from($seg)),*][..] };
}

pub fn check(spec: &ServiceSpec, root: &Node) -> Vec<Diagnostic> {
    let mut f = Findings {
        root,
        out: Vec::new(),
    };
    let m = &spec.metadata;
    if let Err(why) = dns_label(&m.name) {
        f.error(p!("metadata", "name"), format!("`metadata.name` {why}"));
    }
    if let Some(project) = &m.project {
        if let Err(why) = dns_label(project) {
            f.error(
                p!("metadata", "project"),
                format!("`metadata.project` {why}"),
            );
        }
    }
    build(&mut f, &spec.spec.build);
    runtime(&mut f, &spec.spec.runtime, spec.spec.autoscaling.as_ref());
    env(&mut f, &spec.spec.env);
    volumes(&mut f, &spec.spec.volumes);
    domains(&mut f, &spec.spec.domains);
    if let Some(c) = &spec.spec.caching {
        for (i, header) in c.headers.iter().enumerate() {
            if let Err(why) = header_line(header) {
                f.error(p!("spec", "caching", "headers", i), why);
            }
        }
    }
    if let Some(slo) = &spec.spec.slo {
        for (key, value) in [
            ("availability", slo.availability),
            ("errorRate", slo.error_rate),
        ] {
            if let Some(v) = value {
                if !(0.0..=100.0).contains(&v) {
                    f.error(
                        p!("spec", "slo", key),
                        format!("`spec.slo.{key}` is a percentage between 0 and 100, found {v}"),
                    );
                }
            }
        }
    }
    if let Some(mon) = &spec.spec.monitoring {
        let mut names = HashSet::new();
        for (i, t) in mon.targets.iter().enumerate() {
            if !names.insert(t.name.as_str()) {
                f.error(
                    p!("spec", "monitoring", "targets", i, "name"),
                    format!("monitoring target `{}` is listed twice", t.name),
                );
            }
            if http_url_host(&t.url).is_none() {
                f.error(
                    p!("spec", "monitoring", "targets", i, "url"),
                    format!("`{}` is not an http:// or https:// URL", t.url),
                );
            }
            if !(100..=599).contains(&t.expected_status) {
                f.error(
                    p!("spec", "monitoring", "targets", i, "expectedStatus"),
                    format!("{} is not an HTTP status code", t.expected_status),
                );
            }
            if t.interval.0 < std::time::Duration::from_secs(5) {
                f.error(
                    p!("spec", "monitoring", "targets", i, "interval"),
                    "probe interval must be at least 5s",
                );
            }
        }
    }
    if let Some(r) = &spec.spec.rollout {
        rollout(&mut f, r);
    }
    if let Some(r) = &spec.spec.release {
        release(&mut f, r);
    }
    jobs(&mut f, &m.name, &spec.spec.jobs);
    if let Some(p) = &spec.spec.previews {
        previews(&mut f, p);
    }
    f.out
}

fn previews(f: &mut Findings, p: &Previews) {
    if let Some(label) = &p.label {
        if label.trim().is_empty() {
            f.error(
                p!("spec", "previews", "label"),
                "`spec.previews.label` is empty; name the pull request label that asks for a preview, or leave it out",
            );
        } else if label.trim() != label {
            f.error(
                p!("spec", "previews", "label"),
                format!("`{label}` starts or ends with spaces, which GitHub labels never do"),
            );
        } else if label.chars().count() > MAX_LABEL || label.chars().any(char::is_control) {
            f.error(
                p!("spec", "previews", "label"),
                format!("`spec.previews.label` is not a GitHub label name (at most {MAX_LABEL} characters, no control characters)"),
            );
        }
    }
    if let (Some(ttl), Some(sleep)) = (p.ttl_hours, p.sleep_after_minutes)
        && u64::from(sleep) >= u64::from(ttl) * 60
    {
        f.warn(
            p!("spec", "previews", "sleepAfterMinutes"),
            format!("a preview is deleted after {ttl}h (ttlHours) before it would sleep after {sleep} minutes"),
        );
    }
    if !p.enabled && (p.label.is_some() || p.ttl_hours.is_some() || p.sleep_after_minutes.is_some())
    {
        f.warn(
            p!("spec", "previews", "enabled"),
            "previews are not enabled, so their other settings have no effect",
        );
    }
}

fn build(f: &mut Findings, b: &Build) {
    if b.dockerfile.is_some() && b.kind != BuildType::Dockerfile {
        f.warn(
            p!("spec", "build", "dockerfile"),
            "`dockerfile` is only used with `type: dockerfile`",
        );
    }
    for (key, value) in [("dockerfile", &b.dockerfile), ("context", &b.context)] {
        if let Some(v) = value {
            if let Err(why) = relative_path(v) {
                f.error(
                    p!("spec", "build", key),
                    format!("`spec.build.{key}` {why}"),
                );
            }
        }
    }
    let mut seen = HashSet::new();
    for (i, arg) in b.build_args.iter().enumerate() {
        if !seen.insert(arg.name.as_str()) {
            f.error(
                p!("spec", "build", "buildArgs", i, "name"),
                format!("build argument `{}` is set twice", arg.name),
            );
        }
    }
    if let Some(src) = &b.source {
        let g = &src.git;
        if !(g.repository.starts_with("https://")
            || g.repository.starts_with("git@")
            || g.repository.starts_with("ssh://"))
        {
            f.error(
                p!("spec", "build", "source", "git", "repository"),
                format!(
                    "`{}` is not a git URL (https://…, ssh://… or git@host:owner/repo)",
                    g.repository
                ),
            );
        }
        if g.branch.is_empty()
            || g.branch.contains("..")
            || g.branch.contains(' ')
            || g.branch.starts_with('-')
        {
            f.error(
                p!("spec", "build", "source", "git", "branch"),
                format!("`{}` is not a valid branch name", g.branch),
            );
        }
        if let Some(path) = &g.path {
            if let Err(why) = relative_path(path) {
                f.error(
                    p!("spec", "build", "source", "git", "path"),
                    format!("`spec.build.source.git.path` {why}"),
                );
            }
        }
    }
}

fn runtime(f: &mut Findings, r: &Runtime, autoscaling: Option<&Autoscaling>) {
    if r.replicas > MAX_REPLICAS {
        f.error(
            p!("spec", "runtime", "replicas"),
            format!(
                "`spec.runtime.replicas` is {}, above the maximum of {MAX_REPLICAS}",
                r.replicas
            ),
        );
    }
    if let Some(account) = &r.service_account_name
        && let Err(why) = dns_subdomain(account)
    {
        f.error(
            p!("spec", "runtime", "serviceAccountName"),
            format!("`spec.runtime.serviceAccountName` {why}"),
        );
    }
    if let Some(path) = &r.health_check {
        if !path.starts_with('/') {
            f.error(
                p!("spec", "runtime", "healthCheck"),
                format!("`{path}` must be an HTTP path starting with /"),
            );
        }
    }
    for (key, probe) in [
        ("readinessProbe", &r.readiness_probe),
        ("livenessProbe", &r.liveness_probe),
    ] {
        if let Some(probe) = probe {
            if !probe.path.starts_with('/') {
                f.error(
                    p!("spec", "runtime", key, "path"),
                    format!("`{}` must be an HTTP path starting with /", probe.path),
                );
            }
            if probe.port == Some(0) {
                f.error(p!("spec", "runtime", key, "port"), "port 0 is not a port");
            }
        }
    }
    if let Some(res) = &r.resources {
        resources(f, res, p!("spec", "runtime", "resources"));
    }
    if let Some(a) = autoscaling {
        let at = |k: &'static str| [Seg::from("spec"), Seg::from("autoscaling"), Seg::from(k)];
        if a.min_replicas == 0 {
            f.error(&at("minReplicas"), "`minReplicas` must be at least 1");
        }
        if a.min_replicas > a.max_replicas {
            f.error(
                &at("minReplicas"),
                format!(
                    "`minReplicas` ({}) is more than `maxReplicas` ({})",
                    a.min_replicas, a.max_replicas
                ),
            );
        }
        if a.max_replicas > MAX_REPLICAS {
            f.error(
                &at("maxReplicas"),
                format!(
                    "`maxReplicas` is {}, above the maximum of {MAX_REPLICAS}",
                    a.max_replicas
                ),
            );
        }
        if a.enabled
            && a.target_cpu_utilization_percentage.is_none()
            && a.target_memory_utilization_percentage.is_none()
        {
            f.error(&[Seg::from("spec"), Seg::from("autoscaling")], "autoscaling needs `targetCPUUtilizationPercentage` or `targetMemoryUtilizationPercentage`");
        }
        if a.enabled && (r.replicas < a.min_replicas || r.replicas > a.max_replicas) {
            f.warn(p!("spec", "runtime", "replicas"), format!("replicas {} is outside the autoscaling range {}–{}; the autoscaler will move it", r.replicas, a.min_replicas, a.max_replicas));
        }
    }
}

fn resources(f: &mut Findings, res: &Resources, at: &[Seg]) {
    let under = |more: &[&str]| -> Vec<Seg> {
        at.iter()
            .cloned()
            .chain(more.iter().map(|k| Seg::from(*k)))
            .collect()
    };
    for (group, list) in [("requests", &res.requests), ("limits", &res.limits)] {
        let Some(list) = list else { continue };
        for (key, q) in [("cpu", &list.cpu), ("memory", &list.memory)] {
            if let Some(q) = q
                && parse_quantity(&q.0).is_none()
            {
                f.error(
                    &under(&[group, key]),
                    format!(
                        "`{}` is not a Kubernetes quantity (such as 200m, 512Mi, 1Gi)",
                        q.0
                    ),
                );
            }
        }
    }
    if let (Some(req), Some(lim)) = (&res.requests, &res.limits) {
        for (key, a, b) in [
            ("cpu", &req.cpu, &lim.cpu),
            ("memory", &req.memory, &lim.memory),
        ] {
            if let (Some(a), Some(b)) = (a, b)
                && let (Some(x), Some(y)) = (parse_quantity(&a.0), parse_quantity(&b.0))
                && x > y
            {
                f.error(
                    &under(&["requests", key]),
                    format!("requests.{key} {} is more than limits.{key} {}", a.0, b.0),
                );
            }
        }
    }
}

/// The `enclii.dev/job` values of release-command Jobs and one-off runs: a scheduled job named so
/// would count their runs as its own.
pub const RESERVED_JOB_NAMES: [&str; 2] = ["release", "run"];

/// Kubernetes CronJob names are at most 52 characters (their Jobs add an 11-character suffix).
pub const MAX_CRONJOB_NAME: usize = 52;

fn release(f: &mut Findings, r: &Release) {
    command(f, &r.command, p!("spec", "release", "command"));
}

fn command(f: &mut Findings, command: &[String], at: &[Seg]) {
    if command.is_empty() {
        f.error(
            at,
            "the command is empty; write the program and its arguments, such as [./migrate, up]",
        );
    } else if command[0].trim().is_empty() {
        f.error(at, "the command's first word (the program) is empty");
    }
}

fn jobs(f: &mut Findings, service: &str, jobs: &[ScheduledJob]) {
    let mut names = HashSet::new();
    for (i, j) in jobs.iter().enumerate() {
        let at = |k: &'static str| {
            [
                Seg::from("spec"),
                Seg::from("jobs"),
                Seg::from(i),
                Seg::from(k),
            ]
        };
        if let Err(why) = dns_label(&j.name) {
            f.error(&at("name"), format!("job name {why}"));
        } else if RESERVED_JOB_NAMES.contains(&j.name.as_str()) {
            f.error(
                &at("name"),
                format!(
                    "`{}` names the platform's own jobs (release commands, one-off runs); choose another name",
                    j.name
                ),
            );
        } else if service.len() + 1 + j.name.len() > MAX_CRONJOB_NAME {
            f.error(
                &at("name"),
                format!(
                    "`{service}-{}` is {} characters; a job's name with its service's is at most {MAX_CRONJOB_NAME}",
                    j.name,
                    service.len() + 1 + j.name.len()
                ),
            );
        }
        if !names.insert(j.name.as_str()) {
            f.error(&at("name"), format!("job `{}` is declared twice", j.name));
        }
        if let Err(e) = crate::cron::Schedule::parse(&j.schedule) {
            f.error(&at("schedule"), format!("`spec.jobs[{i}].schedule`: {e}"));
        }
        command(f, &j.command, &at("command"));
        if let Some(tz) = &j.timezone
            && let Err(why) = time_zone(tz)
        {
            f.error(&at("timezone"), format!("`{tz}` {why}"));
        }
        if let Some(res) = &j.resources {
            resources(f, res, &at("resources"));
        }
    }
}

/// The shape of an IANA zone name (`UTC`, `Europe/Berlin`, `America/Argentina/Buenos_Aires`,
/// `Etc/GMT+5`). Whether the zone exists is the API server's to say: it checks `timeZone` against
/// its own database when the CronJob is applied, before the deployment changes anything.
pub fn time_zone(tz: &str) -> Result<(), String> {
    let ok = !tz.is_empty()
        && tz.len() <= 64
        && tz.split('/').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err("is not a time zone name such as UTC or Europe/Berlin".into())
    }
}

fn env(f: &mut Findings, vars: &[EnvVar]) {
    let mut seen = HashSet::new();
    for (i, var) in vars.iter().enumerate() {
        let at = |k: &'static str| {
            [
                Seg::from("spec"),
                Seg::from("env"),
                Seg::from(i),
                Seg::from(k),
            ]
        };
        if !is_env_name(&var.name) {
            f.error(&at("name"), format!("`{}` is not a valid variable name (letters, digits, '_', '-', '.'; not starting with a digit)", var.name));
        }
        if !seen.insert(var.name.as_str()) {
            f.error(
                &at("name"),
                format!("environment variable `{}` is set twice", var.name),
            );
        }
        match (&var.value, &var.value_from) {
            (Some(_), Some(_)) => f.error(
                &at("valueFrom"),
                format!("`{}` has both `value` and `valueFrom`; keep one", var.name),
            ),
            (None, None) => f.error(
                &[Seg::from("spec"), Seg::from("env"), Seg::from(i)],
                format!("`{}` needs `value` or `valueFrom`", var.name),
            ),
            (None, Some(from)) => {
                let r = &from.secret_key_ref;
                if let Err(why) = dns_subdomain(&r.name) {
                    f.error(
                        &[
                            Seg::from("spec"),
                            Seg::from("env"),
                            Seg::from(i),
                            Seg::from("valueFrom"),
                            Seg::from("secretKeyRef"),
                            Seg::from("name"),
                        ],
                        format!("secret name {why}"),
                    );
                }
                if r.key.is_empty()
                    || !r
                        .key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
                {
                    f.error(
                        &[
                            Seg::from("spec"),
                            Seg::from("env"),
                            Seg::from(i),
                            Seg::from("valueFrom"),
                            Seg::from("secretKeyRef"),
                            Seg::from("key"),
                        ],
                        format!("`{}` is not a valid secret key", r.key),
                    );
                }
            }
            (Some(_), None) => {}
        }
    }
}

fn volumes(f: &mut Findings, vols: &[Volume]) {
    let mut names = HashSet::new();
    let mut mounts = HashSet::new();
    for (i, v) in vols.iter().enumerate() {
        let at = |k: &'static str| {
            [
                Seg::from("spec"),
                Seg::from("volumes"),
                Seg::from(i),
                Seg::from(k),
            ]
        };
        if let Err(why) = dns_label(&v.name) {
            f.error(&at("name"), format!("volume name {why}"));
        }
        if !names.insert(v.name.as_str()) {
            f.error(
                &at("name"),
                format!("volume `{}` is declared twice", v.name),
            );
        }
        if !v.mount_path.starts_with('/') {
            f.error(
                &at("mountPath"),
                format!("`{}` must be an absolute path", v.mount_path),
            );
        }
        if !mounts.insert(v.mount_path.as_str()) {
            f.error(
                &at("mountPath"),
                format!("two volumes are mounted at `{}`", v.mount_path),
            );
        }
        match parse_quantity(&v.size.0) {
            Some(n) if n > 0 => {}
            _ => f.error(
                &at("size"),
                format!("`{}` is not a storage size (such as 5Gi)", v.size.0),
            ),
        }
    }
}

fn domains(f: &mut Findings, domains: &[Domain]) {
    let mut seen = HashSet::new();
    for (i, d) in domains.iter().enumerate() {
        let at = |k: &'static str| {
            [
                Seg::from("spec"),
                Seg::from("domains"),
                Seg::from(i),
                Seg::from(k),
            ]
        };
        if let Err(why) = hostname(&d.domain) {
            f.error(&at("domain"), format!("`{}` {why}", d.domain));
        }
        if !seen.insert(d.domain.to_ascii_lowercase()) {
            f.error(
                &at("domain"),
                format!("domain `{}` is listed twice", d.domain),
            );
        }
        if let Some(issuer) = &d.tls_issuer {
            if !d.tls {
                f.warn(
                    &at("tlsIssuer"),
                    "`tlsIssuer` has no effect with `tls: false`",
                );
            }
            if let Err(why) = dns_subdomain(issuer) {
                f.error(&at("tlsIssuer"), format!("issuer name {why}"));
            }
        }
    }
}

fn rollout(f: &mut Findings, r: &Rollout) {
    if r.steps.is_empty() {
        f.error(
            p!("spec", "rollout", "steps"),
            "a rollout needs at least one step; the last is 100",
        );
    }
    let mut last = 0;
    for (i, s) in r.steps.iter().enumerate() {
        if s.weight <= last {
            f.error(
                p!("spec", "rollout", "steps", i, "weight"),
                format!("step weights must increase: {} follows {last}", s.weight),
            );
        }
        last = s.weight;
    }
    if r.steps.last().is_some_and(|s| s.weight != 100) {
        f.error(
            p!("spec", "rollout", "steps"),
            "the last rollout step must send 100% of traffic",
        );
    }
    if !(r.max_error_rate > 0.0 && r.max_error_rate <= 100.0) {
        f.error(
            p!("spec", "rollout", "maxErrorRate"),
            "`maxErrorRate` is a percentage above 0 and at most 100",
        );
    }
}

/// RFC 1123 label, as Kubernetes requires for names.
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!("must be 1 to 63 characters, found {}", s.len()));
    }
    let ok = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit)"
        ))
    }
}

fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err(format!("must be 1 to 253 characters, found {}", s.len()));
    }
    s.split('.')
        .try_for_each(dns_label)
        .map_err(|_| format!("`{s}` is not a valid Kubernetes name"))
}

/// A public hostname: dot-separated labels, a top-level label that is not all digits.
pub fn hostname(s: &str) -> Result<(), String> {
    let labels: Vec<&str> = s.split('.').collect();
    if s.len() > 253 || labels.len() < 2 {
        return Err("is not a hostname such as app.example.com".into());
    }
    for label in &labels {
        let lower = label.to_ascii_lowercase();
        if dns_label(&lower).is_err() {
            return Err(format!("is not a hostname: `{label}` is not a valid label"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("is an IP address, not a hostname".into());
    }
    Ok(())
}

fn relative_path(s: &str) -> Result<(), String> {
    if s.starts_with('/') {
        return Err(format!("`{s}` must be relative to the repository"));
    }
    if s.split('/').any(|part| part == "..") {
        return Err(format!("`{s}` must not leave the repository with `..`"));
    }
    Ok(())
}

pub fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// The longest header value the edge accepts from a spec.
pub const MAX_HEADER_VALUE: usize = 512;

/// A `Name: value` header line, as the edge's configuration may carry it: the name letters,
/// digits and hyphens; the value printable ASCII without the characters that mean something to
/// nginx inside a quoted directive argument (`"` `\` `$` `;` `{` `}` `'` and control characters),
/// so a value can never end the directive or interpolate a variable. Whitelisted rather than
/// escaped: an escaping rule that misses one character is an injection.
pub fn header_line(line: &str) -> Result<(&str, &str), String> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(format!(
            "`{}` is not a header line; write `Name: value`",
            line.escape_debug()
        ));
    };
    let (name, value) = (name.trim(), value.trim());
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!(
            "`{}` is not a header name: letters, digits and hyphens only",
            name.escape_debug()
        ));
    }
    if value.is_empty() {
        return Err(format!("header `{name}` has no value"));
    }
    if value.len() > MAX_HEADER_VALUE {
        return Err(format!(
            "the value of header `{name}` is {} characters; at most {MAX_HEADER_VALUE}",
            value.len()
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(' '..='~').contains(c) || "\"\\$;{}'".contains(*c))
    {
        return Err(format!(
            "the value of header `{name}` contains `{}`, which the edge does not accept (allowed: printable ASCII except \" \\ $ ; {{ }} ')",
            bad.escape_debug()
        ));
    }
    Ok((name, value))
}

fn http_url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next()?.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

/// A quantity in its base unit times 1000 (millicores, millibytes), for comparisons.
pub fn parse_quantity(s: &str) -> Option<u128> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole
        .chars()
        .chain(frac.chars())
        .all(|c| c.is_ascii_digit())
        || frac.len() > 3
    {
        return None;
    }
    let milli: u128 = format!("{whole}{frac:0<3}").parse().ok()?;
    let factor: u128 = match suffix {
        "" => 1,
        "m" => return Some(milli / 1000),
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return None,
    };
    milli.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_across_units() {
        assert_eq!(parse_quantity("200m"), Some(200));
        assert_eq!(parse_quantity("1"), Some(1000));
        assert_eq!(parse_quantity("0.5"), Some(500));
        assert!(parse_quantity("512Mi") < parse_quantity("1Gi"));
        assert!(parse_quantity("1000m") == parse_quantity("1"));
        for bad in ["", "m", "1.2.3", "12X", "-1", "1.23456"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn dns_labels_follow_rfc_1123() {
        assert!(dns_label("switchyard-api").is_ok());
        assert!(dns_label("a").is_ok());
        for bad in ["", "-a", "a-", "Upper", "under_score", &"x".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostnames_need_a_dot_and_valid_labels() {
        assert!(hostname("api.enclii.io").is_ok());
        assert!(hostname("enclii.io").is_ok());
        for bad in [
            "localhost",
            "a..b",
            "-x.io",
            "10.0.0.1",
            "has space.io",
            "x.io.",
        ] {
            assert!(hostname(bad).is_err(), "{bad}");
        }
    }
}
