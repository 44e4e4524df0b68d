//! The pods of the engine's other Jobs (release commands, scheduled jobs, `enclii run`): the
//! simulator runs no program, it reads the container's command (and arguments) as a small shell
//! script and plays what it says. Each `echo TEXT` is a log line; `sleep N` makes the run take N
//! seconds (instead of `ready_delay`), so that a timeout can be met; `exit N` ends it with code N.
//! An image whose name contains `task-fails` exits with code 1 whatever its command, after logging
//! `error: simulated failure`. Anything else succeeds. Pieces are separated by `;`, `&&`, `||` or
//! new lines; other commands are logged as `+ command` and succeed.

use std::time::Duration;

use k8s_openapi::api::core::v1::PodSpec;

/// What a task pod's command asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInputs {
    pub exit_code: i32,
    /// `None`: as long as any container takes to start.
    pub runs_for: Option<Duration>,
    pub lines: Vec<String>,
}

impl TaskInputs {
    /// The task of a pod that runs to completion (restart policy `Never` or `OnFailure`), or
    /// `None` for a serving pod.
    pub fn of(spec: &PodSpec) -> Option<Self> {
        let policy = spec.restart_policy.as_deref().unwrap_or("Always");
        if policy == "Always" {
            return None;
        }
        let container = spec.containers.first()?;
        let words: Vec<&str> = container
            .command
            .iter()
            .flatten()
            .chain(container.args.iter().flatten())
            .map(String::as_str)
            .collect();
        // `sh -c SCRIPT` is the script; a plain command is its words.
        let script = match words.as_slice() {
            [shell, "-c", script, ..] if shell.ends_with("sh") => (*script).to_owned(),
            _ => words.join(" "),
        };
        let mut task = Self {
            exit_code: 0,
            runs_for: None,
            lines: Vec::new(),
        };
        for piece in script
            .split(['\n', ';'])
            .flat_map(|p| p.split("&&"))
            .flat_map(|p| p.split("||"))
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if let Some(text) = piece.strip_prefix("echo ") {
                task.lines.push(unquote(text.trim()).to_owned());
            } else if let Some(n) = piece.strip_prefix("sleep ") {
                if let Ok(secs) = n.trim().parse::<f64>()
                    && secs.is_finite()
                    && secs >= 0.0
                {
                    task.runs_for = Some(Duration::from_secs_f64(secs.min(86_400.0)));
                }
            } else if let Some(n) = piece.strip_prefix("exit") {
                task.exit_code = n.trim().parse().unwrap_or(0);
                break;
            } else {
                task.lines.push(format!("+ {piece}"));
            }
        }
        if container
            .image
            .as_deref()
            .is_some_and(|i| i.contains("task-fails"))
        {
            task.lines.push("error: simulated failure".to_owned());
            task.exit_code = 1;
        }
        Some(task)
    }
}

fn unquote(text: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

    fn pod(image: &str, command: &[&str], policy: &str) -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some(image.into()),
                command: Some(command.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }],
            restart_policy: Some(policy.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_task_plays_its_script() {
        let t = TaskInputs::of(&pod(
            "app:1",
            &[
                "sh",
                "-c",
                "echo migrating 0042; echo 'error: relation exists' && exit 3",
            ],
            "Never",
        ))
        .unwrap();
        assert_eq!(t.lines, ["migrating 0042", "error: relation exists"]);
        assert_eq!(t.exit_code, 3);
        assert_eq!(t.runs_for, None);
        let slow = TaskInputs::of(&pod("app:1", &["sleep", "30"], "Never")).unwrap();
        assert_eq!(slow.runs_for, Some(Duration::from_secs(30)));
        assert_eq!(slow.exit_code, 0);
        let plain = TaskInputs::of(&pod("app:1", &["./migrate", "up"], "OnFailure")).unwrap();
        assert_eq!(plain.lines, ["+ ./migrate up"]);
        assert_eq!(plain.exit_code, 0);
    }

    #[test]
    fn a_failing_image_fails_and_serving_pods_are_no_tasks() {
        let t = TaskInputs::of(&pod("app:task-fails", &["./report"], "Never")).unwrap();
        assert_eq!(t.exit_code, 1);
        assert_eq!(t.lines.last().unwrap(), "error: simulated failure");
        assert_eq!(TaskInputs::of(&pod("app:1", &["./serve"], "Always")), None);
    }
}
