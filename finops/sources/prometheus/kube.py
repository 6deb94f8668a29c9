"""Pure: Kubernetes pods and nodes (kube-state-metrics) joined onto GPU and vLLM series.

On a cluster the bill names the node's instance, tagged with cluster tags, while the FinOps labels
(project, team, environment, model-id) sit on the pods. kube-state-metrics exposes both ends:
`kube_pod_labels` (allow-listed pod labels as `label_*`), `kube_pod_info` (a pod's node) and
`kube_node_info` (a node's `provider_id`: `aws:///<zone>/i-...`, `azure:///subscriptions/.../
virtualMachines/<vm>`, whose last segment is the billed resource's key). A GPU or vLLM series of a
pod gains the pod's `label_*` labels and its node's `provider_id`; a GPU no pod holds gains its
node's `provider_id` through the host label dcgm-exporter sets to the node name. Labels the series
already carries win. Attribution then splits each node's bill over the pods' groups by GPU-hours
(rule 2) and prices its unused GPU-hours as idle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from finops.sources.prometheus.parse import Series, first_label
from finops.sources.prometheus.promql import HOST_LABELS, WORKLOAD_LABELS

POD_LABEL_PREFIX = "label_"
PodKey = tuple[str, str]  # (namespace, pod)


def pod_key(labels: Mapping[str, str]) -> PodKey | None:
    """The (namespace, pod) a series names: `exported_*` first (the scrape target's own otherwise)."""
    ns, pod = first_label(labels, WORKLOAD_LABELS["namespace"]), first_label(labels, WORKLOAD_LABELS["pod"])
    return (ns, pod) if ns and pod else None


def _latest(series: Iterable[Series]) -> list[Series]:
    """Series ordered by their last point, so the newest label set of a pod or node is applied last."""
    return sorted(series, key=lambda s: max((t for t, _ in s.points), default=0))


@dataclass(frozen=True)
class Cluster:
    """Pod labels, pod -> node and node -> provider_id, as kube-state-metrics reported them."""

    pod_labels: dict[PodKey, dict[str, str]] = field(default_factory=dict)
    pod_node: dict[PodKey, str] = field(default_factory=dict)
    node_provider: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_series(cls, pod_labels: Sequence[Series], pod_nodes: Sequence[Series],
                    node_providers: Sequence[Series]) -> Cluster:
        out = cls()
        for s in _latest(pod_labels):
            key = pod_key(s.labels)
            if key is not None:
                out.pod_labels[key] = {k: v for k, v in s.labels.items() if k.startswith(POD_LABEL_PREFIX) and v}
        for s in _latest(pod_nodes):
            key, node = pod_key(s.labels), s.labels.get("node")
            if key is not None and node:
                out.pod_node[key] = node
        for s in _latest(node_providers):
            node, provider = s.labels.get("node"), s.labels.get("provider_id")
            if node and provider:
                out.node_provider[node] = provider
        return out

    def labels(self, labels: Mapping[str, str], exporter: re.Pattern[str]) -> dict[str, str]:
        """`labels` with its pod's labels and its node's provider_id added (never overridden). A pod
        matching `exporter` is dcgm-exporter itself (a GPU no workload holds): its labels are not a
        workload's, only its node counts."""
        out = dict(labels)
        key = pod_key(labels)
        workload = key is not None and not exporter.fullmatch(key[1])
        if workload and key is not None:
            for name, value in self.pod_labels.get(key, {}).items():
                out.setdefault(name, value)
        node = (self.pod_node.get(key) if workload and key is not None else None) or first_label(labels, HOST_LABELS)
        provider = self.node_provider.get(node) if node else None
        if provider:
            out.setdefault("provider_id", provider)
        return out

    def join(self, series: Sequence[Series], exporter: re.Pattern[str]) -> list[Series]:
        """Every series with its pod's and node's labels (the points unchanged)."""
        if not (self.pod_labels or self.node_provider):
            return list(series)
        return [Series(self.labels(s.labels, exporter), s.points) for s in series]
