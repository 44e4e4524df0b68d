//! Live status of a service from the cluster: replicas desired, ready and updated, and the release.

use enclii_api::ServiceStatus;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use enclii_spec::render::ANNOTATION_RELEASE;

pub async fn read(
    client: kube::Client,
    environment: &str,
    namespace: &str,
    service: &str,
) -> Result<ServiceStatus, String> {
    let api: Api<Deployment> = Api::namespaced(client, namespace);
    let found = super::apply::with_retries(
        &format!("read Deployment/{service}"),
        3,
        std::time::Duration::from_secs(5),
        || api.get_opt(service),
    )
    .await?;
    let Some(d) = found else {
        return Ok(ServiceStatus {
            environment: environment.to_owned(),
            namespace: namespace.to_owned(),
            deployed: false,
            desired: 0,
            ready: 0,
            updated: 0,
            release: None,
            image: None,
            progress: None,
        });
    };
    let status = d.status.clone().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    Ok(ServiceStatus {
        environment: environment.to_owned(),
        namespace: namespace.to_owned(),
        deployed: true,
        desired: spec.replicas.or(status.replicas).unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        release: d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_RELEASE))
            .cloned(),
        image: spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone()),
        progress: status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing")
            .and_then(|c| c.reason.clone()),
    })
}

/// Ticks whenever the service's Deployments (either track) change in any of `places`
/// (client, namespace): Kubernetes watches, so a live status page costs no polling.
pub fn changes(
    places: Vec<(kube::Client, String)>,
    service: &str,
) -> impl futures::Stream<Item = ()> + Send + 'static + use<> {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let selector = format!("{}={service}", enclii_spec::render::LABEL_SERVICE);
    let streams = places.into_iter().map(move |(client, namespace)| {
        let api: Api<Deployment> = Api::namespaced(client, &namespace);
        watcher(api, watcher::Config::default().labels(&selector))
            .filter_map(|e| async move {
                // Errors are retried by the watcher itself; only applied changes matter.
                matches!(
                    e,
                    Ok(watcher::Event::Apply(_)
                        | watcher::Event::Delete(_)
                        | watcher::Event::InitDone)
                )
                .then_some(())
            })
            .boxed()
    });
    futures::stream::select_all(streams)
}
