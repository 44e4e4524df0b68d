//! Pod logs of a service, streamed from the cluster (`log_stream`: plain streamed HTTP), merged
//! across its pods, each line prefixed with the pod it came from.

use futures::{AsyncBufReadExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, LogParams};

use enclii_spec::render::LABEL_SERVICE;

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
                let prefix = name.clone();
                streams.push(
                    reader
                        .lines()
                        .filter_map(move |line| {
                            let out = line.ok().map(|l| format!("{prefix} | {l}\n"));
                            async move { out }
                        })
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
