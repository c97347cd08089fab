#!/usr/bin/python3
"""Static checks of the deployment manifests: deploy/k8s/*.yaml and .github/workflows/*.yml.

Usage: /usr/bin/python3 deploy/check_manifests.py [REPO_ROOT]

Needs only Debian's python3-yaml (deploy/local/install-deps). Prints one JSON object with what it found and a list of
problems, and exits 1 when there is any problem. Tests/NotifyTests/DeploymentTests.swift runs it and asserts on both.
"""

import json
import os
import re
import sys

import yaml

# The secrets each process uses, and may hold (least privilege).
SECRETS = {
    "gateway": {
        "NOTIFY_PG_PASSWORD", "NOTIFY_REDIS_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_JWT_SECRET",
        "NOTIFY_SENDGRID_WEBHOOK_PUBLIC_KEY", "NOTIFY_MAILGUN_WEBHOOK_SIGNING_KEY", "NOTIFY_TWILIO_AUTH_TOKEN",
    },
    "users": {"NOTIFY_PG_PASSWORD", "NOTIFY_REDIS_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_JWT_SECRET", "NOTIFY_UNSUBSCRIBE_SECRET"},
    "templates": {"NOTIFY_PG_PASSWORD", "NOTIFY_REDIS_PASSWORD", "NOTIFY_SERVICE_KEY"},
    "email-worker": {
        "NOTIFY_PG_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_SMTP_USERNAME", "NOTIFY_SMTP_PASSWORD",
        "NOTIFY_SENDGRID_API_KEY", "NOTIFY_MAILGUN_API_KEY", "NOTIFY_UNSUBSCRIBE_SECRET",
    },
    "push-worker": {
        "NOTIFY_PG_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_VAPID_PRIVATE_KEY", "NOTIFY_FCM_SERVICE_ACCOUNT",
        "NOTIFY_APNS_KEY", "NOTIFY_ONESIGNAL_API_KEY",
    },
    "sms-worker": {
        "NOTIFY_PG_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_TWILIO_AUTH_TOKEN", "NOTIFY_VONAGE_API_SECRET",
    },
    "admin": {"NOTIFY_PG_PASSWORD", "NOTIFY_REDIS_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_WEBHOOK_SECRET_KEY", "NOTIFY_SERVICE_KEY"},
    "relay": {"NOTIFY_PG_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_WEBHOOK_SECRET_KEY"},
}

PROCESSES = {
    "gateway": 8000,
    "users": 8001,
    "templates": 8002,
    "email-worker": 8003,
    "push-worker": 8004,
    "sms-worker": 8007,
    "admin": 8005,
    "relay": 8006,
}


def load_all(path, problems):
    try:
        with open(path, encoding="utf-8") as handle:
            return [doc for doc in yaml.safe_load_all(handle) if doc is not None]
    except (OSError, yaml.YAMLError) as error:
        problems.append(f"{path}: does not parse: {error}")
        return []


def selects(selector, labels):
    """True when a label selector (matchLabels only, as used here) selects these labels."""
    match = (selector or {}).get("matchLabels", selector or {})
    return bool(match) and all(labels.get(key) == value for key, value in match.items())


def container_port(container, port):
    """The numeric container port a probe or Service port refers to (a number or a port name), else None."""
    ports = container.get("ports") or []
    if isinstance(port, int):
        return port if any(p.get("containerPort") == port for p in ports) else None
    for p in ports:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_k8s(root, report, problems):
    directory = os.path.join(root, "deploy", "k8s")
    files = sorted(f for f in os.listdir(directory) if f.endswith((".yaml", ".yml")))
    docs = []
    for name in files:
        for doc in load_all(os.path.join(directory, name), problems):
            if not isinstance(doc, dict) or "kind" not in doc:
                problems.append(f"deploy/k8s/{name}: a document without kind")
                continue
            docs.append((name, doc))
    report["k8s_files"] = files

    # kustomization: lists every manifest that exists, and only those (the example Secret is left out on purpose)
    kustomizations = [doc for name, doc in docs if doc["kind"] == "Kustomization"]
    if len(kustomizations) != 1:
        problems.append("deploy/k8s: expected one kustomization.yaml")
    else:
        listed = kustomizations[0].get("resources") or []
        for resource in listed:
            if resource not in files:
                problems.append(f"kustomization.yaml lists {resource}, which does not exist")
        for name in files:
            if name not in listed and name not in ("kustomization.yaml", "secret.example.yaml"):
                problems.append(f"kustomization.yaml does not list {name}")
        report["kustomization_resources"] = listed

    for name, doc in docs:
        if doc["kind"] in ("Kustomization",):
            continue
        metadata = doc.get("metadata") or {}
        if not metadata.get("name"):
            problems.append(f"deploy/k8s/{name}: {doc['kind']} without metadata.name")
        if doc["kind"] != "Namespace" and metadata.get("namespace") != "notify":
            problems.append(f"deploy/k8s/{name}: {doc['kind']} {metadata.get('name')} is not in namespace notify")

    deployments = {}
    for name, doc in docs:
        if doc["kind"] != "Deployment":
            continue
        deployment = doc["metadata"]["name"]
        spec = doc.get("spec") or {}
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selects(spec.get("selector"), labels):
            problems.append(f"Deployment {deployment}: its selector does not select its own pods")
        pod = template.get("spec") or {}
        security = pod.get("securityContext") or {}
        if security.get("runAsNonRoot") is not True:
            problems.append(f"Deployment {deployment}: pods do not set runAsNonRoot")
        containers = pod.get("containers") or []
        if len(containers) != 1:
            problems.append(f"Deployment {deployment}: expected one container, found {len(containers)}")
            continue
        container = containers[0]
        facts = {"labels": labels, "args": container.get("args") or [], "ports": [p.get("containerPort") for p in container.get("ports") or []]}
        for probe_name in ("readinessProbe", "livenessProbe"):
            probe = container.get(probe_name)
            http = (probe or {}).get("httpGet")
            if not http:
                problems.append(f"Deployment {deployment}: no {probe_name} with httpGet")
                continue
            if http.get("path") != "/health":
                problems.append(f"Deployment {deployment}: {probe_name} probes {http.get('path')}, not /health")
            port = container_port(container, http.get("port"))
            if port is None:
                problems.append(f"Deployment {deployment}: {probe_name} port {http.get('port')} is not a container port")
            facts[probe_name] = {"path": http.get("path"), "port": port}
        limits = (container.get("resources") or {}).get("limits") or {}
        requests = (container.get("resources") or {}).get("requests") or {}
        if "memory" not in limits or "memory" not in requests:
            problems.append(f"Deployment {deployment}: memory request and limit are required")
        facts["memory_limit"] = limits.get("memory")
        env_from = {next(iter(ref.values()))["name"] for ref in container.get("envFrom") or [] if ref}
        if "notify-config" not in env_from:
            problems.append(f"Deployment {deployment}: does not read notify-config")
        if "notify-secrets" in env_from:
            problems.append(f"Deployment {deployment}: takes every secret (envFrom notify-secrets); name the ones it uses")
        secrets = {
            entry["name"] for entry in container.get("env") or []
            if ((entry.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") == "notify-secrets"
        }
        # PostgreSQL: each process logs in as the role of its database, with that role's password, never the owner's.
        environment = {entry["name"]: entry for entry in container.get("env") or []}
        facts["pg_user"] = (environment.get("NOTIFY_PG_USER") or {}).get("value")
        pg_key = (((environment.get("NOTIFY_PG_PASSWORD") or {}).get("valueFrom") or {}).get("secretKeyRef") or {}).get("key")
        facts["pg_password_key"] = pg_key
        if pg_key == "NOTIFY_PG_PASSWORD" or not facts["pg_user"]:
            problems.append(f"Deployment {deployment}: logs in to PostgreSQL as the owner of the databases, not a service role")
        allowed = SECRETS.get(deployment)
        if allowed is not None and not secrets <= allowed:
            problems.append(f"Deployment {deployment}: holds secrets it does not use: {sorted(secrets - allowed)}")
        facts["secrets"] = sorted(secrets)
        expected_port = PROCESSES.get(deployment)
        if expected_port is None:
            problems.append(f"Deployment {deployment}: not one of the seven processes")
        else:
            if facts["args"][:1] != [deployment]:
                problems.append(f"Deployment {deployment}: runs {facts['args']}, not notify {deployment}")
            if facts["ports"] != [expected_port]:
                problems.append(f"Deployment {deployment}: container port {facts['ports']}, expected {expected_port}")
        deployments[deployment] = facts
    for process in PROCESSES:
        if process not in deployments:
            problems.append(f"no Deployment for {process}")
    report["deployments"] = deployments

    services = {}
    for name, doc in docs:
        if doc["kind"] != "Service":
            continue
        service = doc["metadata"]["name"]
        selector = (doc.get("spec") or {}).get("selector") or {}
        targets = [d for d, facts in deployments.items() if selects(selector, facts["labels"])]
        if len(targets) != 1:
            problems.append(f"Service {service}: selects {targets}, expected exactly one Deployment")
        services[service] = targets
    for process in PROCESSES:
        if process not in services:
            problems.append(f"no Service {process}")
    report["services"] = services

    hpas = {}
    for name, doc in docs:
        if doc["kind"] != "HorizontalPodAutoscaler":
            continue
        if doc.get("apiVersion") != "autoscaling/v2":
            problems.append(f"HorizontalPodAutoscaler {doc['metadata']['name']}: apiVersion is not autoscaling/v2")
        spec = doc.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        if target.get("kind") != "Deployment" or target.get("name") not in deployments:
            problems.append(f"HorizontalPodAutoscaler {doc['metadata']['name']}: targets {target}, not one of our Deployments")
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
        if not (1 <= low <= high):
            problems.append(f"HorizontalPodAutoscaler {doc['metadata']['name']}: minReplicas {low}, maxReplicas {high}")
        hpas[doc["metadata"]["name"]] = {"target": target.get("name"), "min": low, "max": high}
        # a Deployment that an HPA scales must not pin replicas (every apply would undo the HPA)
    for hpa in hpas.values():
        for name, doc in docs:
            if doc["kind"] == "Deployment" and doc["metadata"]["name"] == hpa["target"] and "replicas" in (doc.get("spec") or {}):
                problems.append(f"Deployment {hpa['target']}: sets replicas although an HPA scales it")
    report["hpas"] = hpas

    covered = {}
    for name, doc in docs:
        if doc["kind"] != "PodDisruptionBudget":
            continue
        spec = doc.get("spec") or {}
        if ("minAvailable" in spec) == ("maxUnavailable" in spec):
            problems.append(f"PodDisruptionBudget {doc['metadata']['name']}: needs exactly one of minAvailable, maxUnavailable")
        targets = [d for d, facts in deployments.items() if selects(spec.get("selector"), facts["labels"])]
        if len(targets) != 1:
            problems.append(f"PodDisruptionBudget {doc['metadata']['name']}: selects {targets}, expected exactly one Deployment")
        for target in targets:
            covered.setdefault(target, []).append(doc["metadata"]["name"])
    for deployment in deployments:
        if len(covered.get(deployment, [])) != 1:
            problems.append(f"Deployment {deployment}: covered by {covered.get(deployment, [])} PodDisruptionBudgets, expected one")
    report["pdbs"] = covered

    jobs = {}
    for name, doc in docs:
        if doc["kind"] != "Job":
            continue
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        commands = [(c.get("command") or []) + (c.get("args") or []) for c in pod.get("containers") or []]
        jobs[doc["metadata"]["name"]] = commands
        if pod.get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append(f"Job {doc['metadata']['name']}: restartPolicy must be Never or OnFailure")
    if not any("migrate" in command for commands in jobs.values() for command in commands):
        problems.append("no Job runs notify migrate")
    report["jobs"] = jobs

    # Network policies: default deny, open ingress only to the four services that take traffic, provider egress for the
    # workers that excludes internal ranges.
    policies = {doc["metadata"]["name"]: doc.get("spec") or {} for _, doc in docs if doc["kind"] == "NetworkPolicy"}
    default_deny = [
        name for name, spec in policies.items()
        if spec.get("podSelector") == {} and set(spec.get("policyTypes") or []) == {"Ingress", "Egress"}
        and not spec.get("ingress") and not spec.get("egress")
    ]
    if not default_deny:
        problems.append("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")
    # ingress_to: the pods anything may reach (a rule without `from`); a rule naming its peers is not counted.
    ingress_to = set()
    for name, spec in policies.items():
        if any(not rule.get("from") for rule in spec.get("ingress") or []):
            for expression in (spec.get("podSelector") or {}).get("matchExpressions") or []:
                if expression.get("key") == "app.kubernetes.io/name":
                    ingress_to |= set(expression.get("values") or [])
            labels = (spec.get("podSelector") or {}).get("matchLabels") or {}
            if "app.kubernetes.io/name" in labels:
                ingress_to.add(labels["app.kubernetes.io/name"])
            elif not (spec.get("podSelector") or {}).get("matchExpressions"):
                problems.append(f"NetworkPolicy {name}: ingress to every pod")
    internet_excludes = {}
    for name, spec in policies.items():
        for rule in spec.get("egress") or []:
            for peer in rule.get("to") or []:
                block = peer.get("ipBlock")
                if block and block.get("cidr") == "0.0.0.0/0":
                    internet_excludes[name] = sorted(block.get("except") or [])
                    for needed in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"):
                        if needed not in (block.get("except") or []):
                            problems.append(f"NetworkPolicy {name}: egress to the internet does not exclude {needed}")
    report["network_policies"] = {"default_deny": default_deny, "ingress_to": sorted(ingress_to), "internet_egress": internet_excludes}


def check_workflows(root, report, problems):
    directory = os.path.join(root, ".github", "workflows")
    if not os.path.isdir(directory):
        problems.append(".github/workflows is missing")
        return
    workflows = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yml", ".yaml")):
            continue
        docs = load_all(os.path.join(directory, name), problems)
        if len(docs) != 1 or not isinstance(docs[0], dict):
            problems.append(f".github/workflows/{name}: expected one YAML mapping")
            continue
        workflow = docs[0]
        # YAML 1.1 reads the key `on` as the boolean true
        triggers = workflow.get("on", workflow.get(True))
        if not triggers:
            problems.append(f".github/workflows/{name}: no `on` triggers")
        jobs = workflow.get("jobs") or {}
        if not jobs:
            problems.append(f".github/workflows/{name}: no jobs")
        runs = {}
        for job_name, job in jobs.items():
            steps = (job or {}).get("steps") or []
            if not steps:
                problems.append(f".github/workflows/{name}: job {job_name} has no steps")
            for step in steps:
                if not isinstance(step, dict) or not ("run" in step or "uses" in step):
                    problems.append(f".github/workflows/{name}: job {job_name} has a step with neither run nor uses")
            runs[job_name] = [step.get("run") or step.get("uses") for step in steps if isinstance(step, dict)]
        workflows[name] = {"triggers": sorted(triggers) if isinstance(triggers, (dict, list)) else [triggers], "jobs": runs}
    if not workflows:
        problems.append(".github/workflows has no workflow")
    report["workflows"] = workflows
    every_run = [run for workflow in workflows.values() for steps in workflow["jobs"].values() for run in steps if run]
    if not any(re.search(r"(^|\s)bash \.ci/run(\s|$)", run) for run in every_run):
        problems.append("no workflow step runs the project's test command, bash .ci/run")
    texts = [open(os.path.join(directory, n), encoding="utf-8").read() for n in workflows]
    if not any("docker/build-push-action" in text and "deploy/Dockerfile" in text for text in texts):
        problems.append("no workflow builds deploy/Dockerfile (docker/build-push-action)")
    if not any(re.search(r"compose.*deploy/compose\.yaml.*config|compose.*config.*deploy/compose\.yaml", text) for text in texts):
        problems.append("no workflow validates deploy/compose.yaml (docker compose config)")


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    report, problems = {}, []
    check_k8s(root, report, problems)
    check_workflows(root, report, problems)
    report["problems"] = problems
    print(json.dumps(report, indent=1, sort_keys=True))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
