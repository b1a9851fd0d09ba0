// node validate-crds.mjs FILE.yaml...: validate ServiceMonitor/PodMonitor/PrometheusRule objects with the
// Prometheus Operator's CRD schemas (@kubernetes-models/prometheus-operator). Prints one line per
// object; exits 1 if any is invalid, 2 on a file it cannot read.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const kinds = { ServiceMonitor, PodMonitor, PrometheusRule };
let failed = false;
for (const file of process.argv.slice(2)) {
  let docs;
  try {
    docs = yaml.loadAll(readFileSync(file, "utf8")).filter(Boolean);
  } catch (e) {
    console.log(`ERROR ${file}: ${e.message}`);
    process.exit(2);
  }
  for (const doc of docs) {
    const Kind = kinds[doc.kind];
    if (!Kind || doc.apiVersion !== "monitoring.coreos.com/v1") continue;
    try {
      new Kind(doc).validate();
      console.log(`OK ${file}: ${doc.kind}/${doc.metadata?.name}`);
    } catch (e) {
      failed = true;
      console.log(`INVALID ${file}: ${doc.kind}/${doc.metadata?.name}: ${e.message}`);
    }
  }
}
process.exit(failed ? 1 : 0);
