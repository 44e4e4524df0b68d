//! GitHub webhook deliveries, the pure part: the signature check and what a push says. No I/O.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// `X-Hub-Signature-256: sha256=<hex>` over the raw body, keyed by the repository's webhook secret.
/// Compared in constant time (`Mac::verify_slice`).
pub fn signature_matches(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The header value GitHub would send for `body` (tests and the benchmark sign with it).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The SHA-256 of a delivery's raw body. A signed delivery captured and sent again under a new
/// `X-GitHub-Delivery` has the same one, so verified deliveries are recognised by it as well as
/// by their id (GitHub's own redeliveries keep the id).
pub fn payload_digest(body: &[u8]) -> Vec<u8> {
    Sha256::digest(body).to_vec()
}

/// `s` cut to at most `max` bytes, on a character boundary: how much of a rejected delivery's
/// request-supplied text (event, repository, ref) is kept.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What Enclii reads from a delivery's JSON.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    /// The repository URL as GitHub names it (`html_url`, else `clone_url`).
    pub repository: Option<String>,
    /// `refs/heads/main`
    pub git_ref: Option<String>,
    /// The commit the push moved the branch to.
    pub after: Option<String>,
    pub deleted: bool,
    /// Files added, modified or removed by the pushed commits; `None` when GitHub did not list them
    /// (then every path counts as changed).
    pub changed: Option<Vec<String>>,
    /// A `pull_request` delivery's pull request.
    pub pull_request: Option<PullRequest>,
}

/// What a `pull_request` delivery says (`action` and the pull request's own fields).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PullRequest {
    pub action: String,
    pub number: u32,
    /// The commit at the head of the pull request: the one a preview builds.
    pub head_sha: String,
    /// The head branch's name, for people (never used to fetch anything).
    pub head_ref: String,
    /// The head lives in another repository than the base (or its repository is gone): a fork.
    pub from_fork: bool,
    pub labels: Vec<String>,
    pub merged: bool,
}

fn pull_request(v: &serde_json::Value) -> Option<PullRequest> {
    let pr = v.get("pull_request")?;
    let repo_id = |side: &str| pr[side]["repo"]["id"].as_u64();
    let number = v["number"]
        .as_u64()
        .or_else(|| pr["number"].as_u64())
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    Some(PullRequest {
        action: v["action"].as_str().unwrap_or_default().to_owned(),
        number,
        head_sha: pr["head"]["sha"].as_str().unwrap_or_default().to_owned(),
        head_ref: clip(pr["head"]["ref"].as_str().unwrap_or_default(), 200).to_owned(),
        // Unknown is a fork: only a head GitHub says is the base repository itself is trusted.
        from_fork: match (repo_id("head"), repo_id("base")) {
            (Some(head), Some(base)) => head != base,
            _ => true,
        },
        labels: pr["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["name"].as_str().map(str::to_owned))
            .collect(),
        merged: pr["merged"].as_bool().unwrap_or(false),
    })
}

pub fn parse(body: &[u8]) -> Result<Payload, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let repo = &v["repository"];
    let repository = repo["html_url"]
        .as_str()
        .or_else(|| repo["clone_url"].as_str())
        .map(str::to_owned);
    let changed = v["commits"].as_array().map(|commits| {
        let mut files: Vec<String> = commits
            .iter()
            .flat_map(|c| {
                ["added", "modified", "removed"]
                    .into_iter()
                    .flat_map(move |k| {
                        c[k].as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|f| f.as_str().map(str::to_owned))
                    })
            })
            .collect();
        files.sort();
        files.dedup();
        files
    });
    Ok(Payload {
        repository,
        git_ref: v["ref"].as_str().map(str::to_owned),
        after: v["after"].as_str().map(str::to_owned),
        deleted: v["deleted"].as_bool().unwrap_or(false),
        // An empty commit list (a force-push of known commits) says nothing about paths.
        changed: changed.filter(|c: &Vec<String>| !c.is_empty()),
        pull_request: pull_request(&v),
    })
}

/// Whether a push that changed `changed` concerns a service built from `path` (`None`, `.` or
/// empty: the whole repository).
pub fn touches(path: Option<&str>, changed: Option<&[String]>) -> bool {
    let path = path
        .unwrap_or("")
        .trim_start_matches("./")
        .trim_matches('/');
    if path.is_empty() || path == "." {
        return true;
    }
    match changed {
        None => true,
        Some(files) => files
            .iter()
            .any(|f| f == path || f.starts_with(&format!("{path}/"))),
    }
}

/// `refs/heads/main` → `main`; tags and other refs are not branches.
pub fn branch(git_ref: &str) -> Option<&str> {
    git_ref.strip_prefix("refs/heads/")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";

    #[test]
    fn githubs_documented_example_verifies() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(SECRET, BODY), header);
        assert!(signature_matches(SECRET, BODY, Some(header)));
    }

    #[test]
    fn wrong_missing_or_malformed_signatures_do_not() {
        let good = sign(SECRET, BODY);
        assert!(!signature_matches(b"another secret", BODY, Some(&good)));
        assert!(!signature_matches(SECRET, b"Hello, World?", Some(&good)));
        assert!(!signature_matches(SECRET, BODY, None));
        assert!(!signature_matches(
            SECRET,
            BODY,
            Some(good.trim_start_matches("sha256="))
        ));
        assert!(!signature_matches(SECRET, BODY, Some("sha1=abc")));
        assert!(!signature_matches(SECRET, BODY, Some("sha256=zz")));
        assert!(!signature_matches(
            SECRET,
            BODY,
            Some(&good[..good.len() - 2])
        ));
    }

    #[test]
    fn a_push_payload_names_the_repository_branch_commit_and_files() {
        let body = serde_json::json!({
            "ref": "refs/heads/main", "after": "a1b2", "deleted": false,
            "repository": {"html_url": "https://github.com/madfam-io/enclii", "clone_url": "https://github.com/madfam-io/enclii.git"},
            "commits": [{"added": ["apps/api/new.rs"], "modified": ["README.md"], "removed": []},
                        {"added": [], "modified": ["apps/api/new.rs"], "removed": ["old.txt"]}]
        });
        let p = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            p.repository.as_deref(),
            Some("https://github.com/madfam-io/enclii")
        );
        assert_eq!(p.git_ref.as_deref().and_then(branch), Some("main"));
        assert_eq!(p.after.as_deref(), Some("a1b2"));
        assert_eq!(
            p.changed.unwrap(),
            ["README.md", "apps/api/new.rs", "old.txt"]
        );
        assert!(parse(b"not json").is_err());
        assert_eq!(branch("refs/tags/v1"), None);
    }

    #[test]
    fn replays_share_a_digest_and_clipping_keeps_whole_characters() {
        assert_eq!(payload_digest(BODY), payload_digest(b"Hello, World!"));
        assert_ne!(payload_digest(BODY), payload_digest(b"Hello, World?"));
        assert_eq!(payload_digest(BODY).len(), 32);
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdef", 3), "abc");
        // `é` is two bytes: cutting inside it keeps the character before.
        assert_eq!(clip("aé", 2), "a");
        assert_eq!(clip(&"x".repeat(1 << 20), 200).len(), 200);
    }

    #[test]
    fn a_pull_request_payload_names_its_head_labels_and_whether_it_is_a_fork() {
        let body = serde_json::json!({
            "action": "labeled", "number": 42,
            "label": {"name": "preview"},
            "pull_request": {
                "number": 42, "merged": false,
                "labels": [{"name": "preview"}, {"name": "bug"}],
                "head": {"sha": "ab".repeat(20), "ref": "feature/x", "repo": {"id": 7}},
                "base": {"sha": "cd".repeat(20), "ref": "main", "repo": {"id": 7}}
            },
            "repository": {"html_url": "https://github.com/madfam-io/enclii"}
        });
        let p = parse(body.to_string().as_bytes()).unwrap();
        let pr = p.pull_request.unwrap();
        assert_eq!(pr.action, "labeled");
        assert_eq!(pr.number, 42);
        assert_eq!(pr.head_sha, "ab".repeat(20));
        assert_eq!(pr.head_ref, "feature/x");
        assert!(!pr.from_fork);
        assert_eq!(pr.labels, ["preview", "bug"]);

        let mut fork = body.clone();
        fork["pull_request"]["head"]["repo"]["id"] = 8.into();
        let pr = parse(fork.to_string().as_bytes())
            .unwrap()
            .pull_request
            .unwrap();
        assert!(pr.from_fork, "another repository");
        let mut gone = body.clone();
        gone["pull_request"]["head"]["repo"] = serde_json::Value::Null;
        let pr = parse(gone.to_string().as_bytes())
            .unwrap()
            .pull_request
            .unwrap();
        assert!(
            pr.from_fork,
            "a deleted fork's head has no repository: not trusted"
        );
        // A push is not a pull request.
        assert!(
            parse(b"{\"ref\": \"refs/heads/main\"}")
                .unwrap()
                .pull_request
                .is_none()
        );
    }

    #[test]
    fn path_filters() {
        let files = vec!["apps/api/main.rs".to_owned(), "docs/x.md".to_owned()];
        assert!(touches(None, Some(&files)));
        assert!(touches(Some("."), Some(&files)));
        assert!(touches(Some("apps/api"), Some(&files)));
        assert!(touches(Some("./apps/api/"), Some(&files)));
        assert!(!touches(Some("apps/web"), Some(&files)));
        // `apps/ap` is not a prefix of the directory `apps/api`.
        assert!(!touches(Some("apps/ap"), Some(&files)));
        assert!(touches(Some("apps/web"), None), "unknown files: build");
    }
}
