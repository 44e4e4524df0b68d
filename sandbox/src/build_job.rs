//! The pods of the build Jobs the engine renders (`engine/src/pipeline/job.rs`): the simulator does
//! not run git or BuildKit, it reads what they would do from the Job's scripts (the ref the
//! checkout fetches, the image the build pushes) and plays the outcome. A build succeeds and leaves
//! BuildKit's metadata (the image digest) as the build container's termination message, which the
//! engine's `read_outcome` parses, or fails with a build error when the ref starts with `bad`.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use sha2::{Digest, Sha256};

/// What a build pod's scripts ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInputs {
    pub git_ref: String,
    pub image: String,
}

impl BuildInputs {
    /// The inputs of a build pod, or `None` for any other pod. The checkout script is the first
    /// init container's `sh -c` argument, the BuildKit invocation the first container's.
    pub fn of(spec: &PodSpec) -> Option<Self> {
        let build = script(spec.containers.first());
        let image = between(build, "type=image,name='", '\'')?;
        if !build.contains("buildctl") {
            return None;
        }
        let checkout = script(spec.init_containers.as_ref().and_then(|c| c.first()));
        let git_ref = between(checkout, "--depth 1 -- origin '", '\'').unwrap_or_default();
        Some(Self {
            git_ref: git_ref.to_owned(),
            image: image.to_owned(),
        })
    }

    /// A ref starting with `bad` stands for a commit whose build breaks.
    pub fn fails(&self) -> bool {
        self.git_ref.starts_with("bad")
    }

    /// The image digest the build reports: stable for a ref and an image.
    pub fn digest(&self) -> String {
        let hash = Sha256::digest(format!("{}@{}", self.image, self.git_ref).as_bytes());
        format!("sha256:{}", hex(&hash))
    }

    /// The build container's termination message: BuildKit's `--metadata-file` on success
    /// (copied to `/dev/termination-log`); none on failure, as the script stops before the copy.
    pub fn termination_message(&self) -> Option<String> {
        (!self.fails()).then(|| {
            serde_json::json!({
                "containerimage.digest": self.digest(),
                "image.name": self.image,
            })
            .to_string()
        })
    }

    /// The lines the build container logs, in order.
    pub fn log(&self) -> Vec<String> {
        let mut lines = vec![
            format!("checked out {}", self.git_ref),
            "#1 [internal] load build definition from Dockerfile".to_owned(),
            "#1 transferring dockerfile: 612B done".to_owned(),
            "#2 [internal] load metadata for docker.io/library/node:22-alpine".to_owned(),
            "#3 [build 1/4] WORKDIR /app".to_owned(),
            "#4 [build 2/4] COPY . .".to_owned(),
            "#5 [build 3/4] RUN npm ci && npm run build".to_owned(),
        ];
        if self.fails() {
            lines.push("#5 12.31 npm ERR! Missing script: \"build\"".to_owned());
            lines.push(
                "ERROR: failed to solve: process \"/bin/sh -c npm ci && npm run build\" did not complete successfully: exit code: 1"
                    .to_owned(),
            );
        } else {
            lines.push("#5 DONE 14.2s".to_owned());
            lines.push("#6 exporting to image".to_owned());
            lines.push("#6 generating SBOM and provenance attestations done".to_owned());
            lines.push(format!("#6 pushing {} done", self.image));
        }
        lines
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `sh -c` script of a container.
fn script(c: Option<&Container>) -> &str {
    c.and_then(|c| c.command.as_ref())
        .and_then(|cmd| cmd.get(2))
        .map(String::as_str)
        .unwrap_or_default()
}

fn between<'a>(text: &'a str, start: &str, end: char) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(script: &str) -> Container {
        Container {
            name: "c".into(),
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Default::default()
        }
    }

    /// The scripts as `engine/src/pipeline/job.rs` writes them.
    fn build_pod(git_ref: &str) -> PodSpec {
        PodSpec {
            init_containers: Some(vec![container(&format!(
                "set -eu\ngit init -q /workspace/src\ncd /workspace/src\ngit remote add origin 'https://github.com/o/r'\ngit fetch -q --depth 1 -- origin '{git_ref}'\ngit checkout -q FETCH_HEAD\n"
            ))]),
            containers: vec![container(
                "set -eu\nbuildctl-daemonless.sh build \\\n  --output type=image,name='registry.enclii.local/p/api:0123456789ab',push=true \\\n  --metadata-file /workspace/metadata.json \ncp /workspace/metadata.json /dev/termination-log\n",
            )],
            ..Default::default()
        }
    }

    #[test]
    fn a_build_pod_reveals_its_ref_and_image() {
        let inputs = BuildInputs::of(&build_pod("0123456789abcdef")).unwrap();
        assert_eq!(inputs.git_ref, "0123456789abcdef");
        assert_eq!(inputs.image, "registry.enclii.local/p/api:0123456789ab");
        assert!(!inputs.fails());
        let other = PodSpec {
            containers: vec![container("nginx -g 'daemon off;'")],
            ..Default::default()
        };
        assert_eq!(BuildInputs::of(&other), None);
    }

    #[test]
    fn a_successful_build_reports_the_digest_the_engine_reads() {
        let inputs = BuildInputs::of(&build_pod("0123456789abcdef")).unwrap();
        let message = inputs.termination_message().unwrap();
        let v: serde_json::Value = serde_json::from_str(&message).unwrap();
        // What `read_outcome` accepts: `sha256:` and 64 hex digits.
        let digest = v["containerimage.digest"].as_str().unwrap();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest}"
        );
        assert_eq!(digest, inputs.digest());
        assert_eq!(v["image.name"], "registry.enclii.local/p/api:0123456789ab");
        assert_eq!(inputs.log()[0], "checked out 0123456789abcdef");
        assert!(inputs.log().last().unwrap().starts_with("#6 pushing"));
    }

    #[test]
    fn a_bad_ref_fails_the_build_with_the_error_in_the_log() {
        let inputs = BuildInputs::of(&build_pod("bad-commit")).unwrap();
        assert!(inputs.fails());
        assert_eq!(inputs.termination_message(), None);
        assert!(
            inputs
                .log()
                .last()
                .unwrap()
                .starts_with("ERROR: failed to solve")
        );
    }
}
