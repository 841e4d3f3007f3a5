//! The parts of Kubernetes v1 API objects that discovery reads, in their JSON shape.
//!
//! Every field defaults when absent and unknown fields are ignored, so any object the API server
//! sends decodes; what is missing simply produces no label.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `metadata` of any object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `name`.
    pub name: String,
    /// `namespace` (empty for nodes).
    pub namespace: String,
    /// `uid`.
    pub uid: String,
    /// `resourceVersion`.
    pub resource_version: String,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `ownerReferences`.
    pub owner_references: Vec<OwnerReference>,
}

impl ObjectMeta {
    /// `namespace/name`, the key of namespaced objects in the stores.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One `ownerReferences` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct OwnerReference {
    /// `kind`.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `controller`.
    pub controller: Option<bool>,
}

/// `metadata` of a list response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListMeta {
    /// `resourceVersion`: where a watch continues.
    pub resource_version: String,
}

/// A list response (`PodList`, `NodeList`, ...).
#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    /// `metadata`.
    #[serde(default)]
    pub metadata: ListMeta,
    /// `items`.
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

/// One line of a watch stream.
#[derive(Debug, Clone, Deserialize)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The object (a `Status` for `ERROR`).
    pub object: serde_json::Value,
}

/// `Status`, the body of errors (`ERROR` watch events, 410 Gone).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    /// HTTP status code.
    pub code: u16,
    /// Human-readable message.
    pub message: String,
}

/// A node.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Node {
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: NodeSpec,
    /// `status`.
    pub status: NodeStatus,
}

/// `Node.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NodeSpec {
    /// `providerID`.
    #[serde(rename = "providerID")]
    pub provider_id: String,
}

/// `Node.status`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeStatus {
    /// `addresses`.
    pub addresses: Vec<NodeAddress>,
    /// `daemonEndpoints`.
    pub daemon_endpoints: DaemonEndpoints,
}

/// One `Node.status.addresses` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP`, `LegacyHostIP`, `Hostname`, `InternalDNS`, `ExternalDNS`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The address.
    pub address: String,
}

/// `Node.status.daemonEndpoints`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DaemonEndpoints {
    /// `kubeletEndpoint`.
    pub kubelet_endpoint: DaemonEndpoint,
}

/// A daemon's port (note the capital `Port` of the API).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DaemonEndpoint {
    /// `Port`.
    #[serde(rename = "Port")]
    pub port: i64,
}

/// A pod.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Pod {
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: PodSpec,
    /// `status`.
    pub status: PodStatus,
}

/// `Pod.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    /// `nodeName`.
    pub node_name: String,
    /// `containers`.
    pub containers: Vec<Container>,
    /// `initContainers`.
    pub init_containers: Vec<Container>,
}

/// A container of a pod spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Container {
    /// `name`.
    pub name: String,
    /// `image`.
    pub image: String,
    /// `ports`.
    pub ports: Vec<ContainerPort>,
}

/// A declared container port.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerPort {
    /// `name`.
    pub name: String,
    /// `containerPort`.
    pub container_port: i64,
    /// `protocol` (`TCP`, `UDP`, `SCTP`).
    pub protocol: String,
}

/// `Pod.status`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    /// `phase`.
    pub phase: String,
    /// `podIP`.
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    /// `hostIP`.
    #[serde(rename = "hostIP")]
    pub host_ip: String,
    /// `conditions`.
    pub conditions: Vec<Condition>,
    /// `containerStatuses`.
    pub container_statuses: Vec<ContainerStatus>,
    /// `initContainerStatuses`.
    pub init_container_statuses: Vec<ContainerStatus>,
}

/// A pod condition.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Condition {
    /// `type` (`Ready`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
}

/// A container status.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ContainerStatus {
    /// `name`.
    pub name: String,
    /// `containerID` (`containerd://...`).
    #[serde(rename = "containerID")]
    pub container_id: String,
}

/// A service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Service {
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: ServiceSpec,
}

/// `Service.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `type` (`ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `clusterIP`.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: String,
    /// `externalName`.
    pub external_name: String,
    /// `loadBalancerIP`.
    #[serde(rename = "loadBalancerIP")]
    pub load_balancer_ip: String,
    /// `ports`.
    pub ports: Vec<ServicePort>,
}

/// A service port.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServicePort {
    /// `name`.
    pub name: String,
    /// `port`.
    pub port: i64,
    /// `protocol`.
    pub protocol: String,
}

/// An `Endpoints` object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Endpoints {
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `subsets`.
    pub subsets: Vec<EndpointSubset>,
}

/// One `Endpoints.subsets` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointSubset {
    /// `addresses` (ready).
    pub addresses: Vec<EndpointAddress>,
    /// `notReadyAddresses`.
    pub not_ready_addresses: Vec<EndpointAddress>,
    /// `ports`.
    pub ports: Vec<EndpointPort>,
}

/// An endpoint address.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointAddress {
    /// `ip`.
    pub ip: String,
    /// `hostname`.
    pub hostname: String,
    /// `nodeName`.
    pub node_name: Option<String>,
    /// `targetRef`.
    pub target_ref: Option<ObjectReference>,
}

/// `targetRef` of an endpoint address.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ObjectReference {
    /// `kind` (`Pod`).
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `namespace`.
    pub namespace: String,
}

/// An endpoint port.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EndpointPort {
    /// `name`.
    pub name: String,
    /// `port`.
    pub port: i64,
    /// `protocol`.
    pub protocol: String,
}

/// An ingress (`networking.k8s.io/v1`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Ingress {
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: IngressSpec,
}

/// `Ingress.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IngressSpec {
    /// `ingressClassName`.
    pub ingress_class_name: Option<String>,
    /// `tls`.
    pub tls: Vec<IngressTls>,
    /// `rules`.
    pub rules: Vec<IngressRule>,
}

/// One `Ingress.spec.tls` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct IngressTls {
    /// `hosts` (may use a leading `*.` wildcard).
    pub hosts: Vec<String>,
}

/// One `Ingress.spec.rules` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct IngressRule {
    /// `host`.
    pub host: String,
    /// `http`.
    pub http: Option<HttpIngressRuleValue>,
}

/// `IngressRule.http`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HttpIngressRuleValue {
    /// `paths`.
    pub paths: Vec<HttpIngressPath>,
}

/// One path of an ingress rule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HttpIngressPath {
    /// `path`.
    pub path: String,
}

/// `null` as the default value (Go encodes empty slices without `omitempty` as `null`).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An EndpointSlice (`discovery.k8s.io/v1`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointSlice {
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// `addressType` (`IPv4`, `IPv6`, `FQDN`).
    pub address_type: String,
    /// `endpoints`.
    #[serde(deserialize_with = "null_default")]
    pub endpoints: Vec<SliceEndpoint>,
    /// `ports`.
    #[serde(deserialize_with = "null_default")]
    pub ports: Vec<SlicePort>,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SliceEndpoint {
    /// `addresses`.
    #[serde(deserialize_with = "null_default")]
    pub addresses: Vec<String>,
    /// `conditions`.
    pub conditions: SliceConditions,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `nodeName`.
    pub node_name: Option<String>,
    /// `targetRef`.
    pub target_ref: Option<ObjectReference>,
    /// `deprecatedTopology`.
    #[serde(deserialize_with = "null_default")]
    pub deprecated_topology: BTreeMap<String, String>,
}

/// `conditions` of a slice endpoint.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SliceConditions {
    /// `ready`.
    pub ready: Option<bool>,
    /// `serving`.
    pub serving: Option<bool>,
    /// `terminating`.
    pub terminating: Option<bool>,
}

/// A port of a slice.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SlicePort {
    /// `name`.
    pub name: Option<String>,
    /// `port`.
    pub port: Option<i64>,
    /// `protocol`.
    pub protocol: Option<String>,
    /// `appProtocol`.
    pub app_protocol: Option<String>,
}
