//! Pod logs of a service, streamed from the cluster (`log_stream`: plain streamed HTTP), merged
//! across its pods, each line prefixed with the pod it came from. A line is never longer than
//! [`MAX_LINE_BYTES`]: a pod that writes a megabyte without a newline costs neither the server's
//! memory nor the browser's.

use futures::io::AsyncBufRead;
use futures::{AsyncBufReadExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, LogParams};

use enclii_spec::render::LABEL_SERVICE;

/// The longest line a log stream sends, its cut marker included.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// The logs of a service in an environment, for a caller allowed to view its project.
pub async fn open(
    engine: &crate::Engine,
    caller: Option<&crate::auth::Caller>,
    project: &str,
    service: &str,
    environment: &str,
    follow: bool,
    tail_lines: i64,
) -> crate::Result<impl Stream<Item = String> + Send + 'static + use<>> {
    use enclii_api::ApiError;
    let project = crate::platform::project_access(
        &engine.pool,
        caller,
        project,
        crate::auth::Action::ViewProject,
    )
    .await?;
    let placement = crate::platform::locate(&engine.pool, &project, service, environment).await?;
    let client = engine.cluster(environment)?;
    Ok(
        stream(client, &placement.namespace, service, follow, tail_lines)
            .await
            .map_err(|message| ApiError::Unavailable { message })?,
    )
}

/// Lines from every pod of `service` in `namespace`; with `follow`, new lines as they come.
pub async fn stream(
    client: kube::Client,
    namespace: &str,
    service: &str,
    follow: bool,
    tail_lines: i64,
) -> Result<impl Stream<Item = String> + Send + 'static + use<>, String> {
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("{LABEL_SERVICE}={service}")))
        .await
        .map_err(|e| format!("cannot list the pods of {service}: {e}"))?;
    let params = LogParams {
        follow,
        tail_lines: Some(tail_lines),
        ..Default::default()
    };
    let mut streams = Vec::new();
    for pod in list.items {
        let name = pod.metadata.name.unwrap_or_default();
        match pods.log_stream(&name, &params).await {
            Ok(reader) => {
                let prefix = format!("{name} | ");
                // The prefix counts towards the bound: the line as sent is what must fit.
                let room = MAX_LINE_BYTES.saturating_sub(prefix.len() + 1);
                streams.push(
                    bounded_lines(reader, room)
                        .map(move |line| format!("{prefix}{line}\n"))
                        .boxed(),
                );
            }
            Err(e) => tracing::info!(pod = %name, error = %e, "no logs from pod"),
        }
    }
    if streams.is_empty() {
        return Err(format!("{service} has no running pods in {namespace}"));
    }
    Ok(futures::stream::select_all(streams))
}

/// The lines of `reader` (without their `\n` or `\r\n`), each at most `max` bytes: a longer one
/// is cut with a marker saying how much was left out, and the rest of it is read past without
/// being kept. A read error ends the lines (the log is gone; what came before was sent).
pub fn bounded_lines<R>(reader: R, max: usize) -> impl Stream<Item = String> + Send + 'static
where
    R: AsyncBufRead + Unpin + Send + 'static,
{
    futures::stream::unfold(Some(reader), move |reader| async move {
        let mut reader = reader?;
        let mut kept = Vec::new();
        let mut dropped = 0usize;
        loop {
            let chunk = match reader.fill_buf().await {
                Ok(chunk) => chunk,
                Err(e) => {
                    tracing::info!(error = %e, "a log stream broke off");
                    return (!kept.is_empty() || dropped > 0)
                        .then(|| (fit_line(kept, dropped, max), None));
                }
            };
            if chunk.is_empty() {
                // The end: a last line without a newline still counts.
                return (!kept.is_empty() || dropped > 0)
                    .then(|| (fit_line(kept, dropped, max), None));
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = &chunk[..newline.unwrap_or(chunk.len())];
            // Keep one byte more than fits, so that `fit_line` knows whether to cut.
            let take = part.len().min((max + 1).saturating_sub(kept.len()));
            kept.extend_from_slice(&part[..take]);
            dropped += part.len() - take;
            let used = newline.map_or(chunk.len(), |n| n + 1);
            reader.consume_unpin(used);
            if newline.is_some() {
                if dropped == 0 && kept.last() == Some(&b'\r') {
                    kept.pop();
                }
                return Some((fit_line(kept, dropped, max), Some(reader)));
            }
        }
    })
}

/// `line` as sent: unchanged when it fits in `max` bytes, else cut (at a character boundary) so
/// that it and the marker fit. `dropped` counts bytes of the line already left out.
pub fn fit_line(mut line: Vec<u8>, dropped: usize, max: usize) -> String {
    if dropped == 0 && line.len() <= max {
        return String::from_utf8_lossy(&line).into_owned();
    }
    let total = line.len() + dropped;
    // The marker is sized for the worst case, so the cut below never needs a second pass.
    let marker = |cut: usize| format!(" …[{cut} bytes cut: log lines are limited to {max} bytes]");
    let room = max.saturating_sub(marker(total).len());
    line.truncate(room);
    if let Err(e) = std::str::from_utf8(&line) {
        if e.error_len().is_none() {
            // The cut split a character: drop its first bytes too.
            line.truncate(e.valid_up_to());
        }
    }
    let mut out = String::from_utf8_lossy(&line).into_owned();
    out.push_str(&marker(total - line.len()));
    out
}

/// [`fit_line`] for a line already in memory (a source that reads whole lines), its `\n` kept.
pub fn fit_text_line(line: String, max: usize) -> String {
    let body = line.strip_suffix('\n').unwrap_or(&line);
    if body.len() <= max {
        return line;
    }
    let newline = body.len() != line.len();
    let mut out = fit_line(body.as_bytes().to_vec(), 0, max);
    if newline {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8], max: usize) -> Vec<String> {
        // A small buffer, so that long lines arrive in many chunks as they do from the cluster.
        let reader =
            futures::io::BufReader::with_capacity(7, futures::io::Cursor::new(input.to_vec()));
        bounded_lines(reader, max).collect().await
    }

    #[tokio::test]
    async fn short_lines_pass_unchanged_and_a_last_line_without_newline_counts() {
        let lines = lines_of(b"one\r\ntwo\n\nlast", 64).await;
        assert_eq!(lines, ["one", "two", "", "last"]);
    }

    #[tokio::test]
    async fn a_long_line_is_cut_to_the_limit_with_a_marker_and_the_next_line_is_intact() {
        let mut input = vec![b'x'; 1000];
        input.extend_from_slice(b"\nnext\n");
        let lines = lines_of(&input, 100).await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].len() <= 100, "{}", lines[0].len());
        assert!(lines[0].starts_with("xxxx"));
        let kept = lines[0].bytes().take_while(|&b| b == b'x').count();
        assert!(
            lines[0].ends_with(&format!(
                " …[{} bytes cut: log lines are limited to 100 bytes]",
                1000 - kept
            )),
            "{}",
            lines[0]
        );
        assert_eq!(lines[1], "next");
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_is_not_cut() {
        let mut input = vec![b'y'; 100];
        input.push(b'\n');
        assert_eq!(lines_of(&input, 100).await, ["y".repeat(100)]);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let line = "é".repeat(100).into_bytes();
        let out = fit_line(line, 0, 101);
        assert!(out.len() <= 101, "{}", out.len());
        assert!(!out.contains('\u{fffd}'), "{out}");
    }

    #[test]
    fn whole_lines_are_cut_the_same_way_and_keep_their_newline() {
        assert_eq!(fit_text_line("short\n".into(), 10), "short\n");
        let out = fit_text_line(
            format!("{}\n", "z".repeat(MAX_LINE_BYTES * 4)),
            MAX_LINE_BYTES,
        );
        assert!(out.ends_with("bytes]\n"), "{out}");
        assert!(out.len() <= MAX_LINE_BYTES + 1);
    }
}
