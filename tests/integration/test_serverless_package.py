"""Package serverless.yml with osls, offline, and check the CloudFormation it produces.

``osls package`` runs in a temporary copy of the files it needs (serverless.yml, infra/,
handlers/, a placeholder for each layer), so the working tree gets no ``.serverless/`` or
``.layer/``. The only AWS call ``osls package`` makes is ``DescribeStacks`` (to reuse an
unchanged layer); it goes to a stub on 127.0.0.1 that answers "stack does not exist", and
every other AWS endpoint points at a closed port. osls itself comes from
``infra/node_modules`` (``npm ci`` on first use; the npm registry is the only network this
needs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
OSLS = INFRA / "node_modules" / ".bin" / "osls"
STAGE = "test"
REGION = "us-east-1"
SSM_PREFIX = f"/seedance-relay/{STAGE}/"

# function name -> (logical id, handler, timeout)
FUNCTIONS = {
    "api": ("ApiLambdaFunction", "handlers/lambdas/api.handler", 29),
    "ingest": ("IngestLambdaFunction", "handlers/lambdas/ingest.handler", 120),
    "reconcile": ("ReconcileLambdaFunction", "handlers/lambdas/reconcile.handler", 60),
    "submit": ("SubmitLambdaFunction", "handlers/lambdas/submit.handler", 60),
    "exampleConsumer": ("ExampleConsumerLambdaFunction", "handlers/lambdas/example_consumer.handler", 30),
}
SQS_CONSUMERS = {"ingest": "IngestQueue", "submit": "RequestsQueue", "exampleConsumer": "ExampleSubscriberQueue"}
SECRETS = ("EVOLINK_API_KEY", "RELAY_CALLBACK_SECRET", "RELAY_API_KEYS")
# Which secret each function may read (its *_PARAM variables and its ssm:GetParameter grants).
SECRET_PARAMS = {
    "api": {"evolink-api-key", "callback-secret", "api-keys"},
    "ingest": {"evolink-api-key"},
    "reconcile": {"evolink-api-key", "callback-secret"},
    "submit": {"evolink-api-key", "callback-secret"},
    "exampleConsumer": set(),
}
RESOURCE_SCOPED_SERVICES = ("dynamodb", "s3", "sqs", "sns", "ssm")
# layer name -> logical id; the functions that read or join videos also get PyAV's `media` layer.
LAYERS = {"deps": "DepsLambdaLayer", "media": "MediaLambdaLayer"}
FUNCTION_LAYERS = {"api": ["deps"], "ingest": ["deps", "media"], "reconcile": ["deps"],
                   "submit": ["deps"], "exampleConsumer": ["deps"]}


# --- packaging -------------------------------------------------------------------------


@dataclass(frozen=True)
class Packaged:
    template: dict[str, Any]
    directory: Path
    aws_calls: list[str]
    seconds: float

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template["Resources"]
        return resources

    def of_type(self, kind: str) -> dict[str, Any]:
        return {name: r for name, r in self.resources.items() if r["Type"] == kind}

    def props(self, logical_id: str) -> dict[str, Any]:
        assert logical_id in self.resources, f"{logical_id} missing from the template"
        properties: dict[str, Any] = self.resources[logical_id].get("Properties", {})
        return properties


class _CloudFormationStub(BaseHTTPRequestHandler):
    """Answers every CloudFormation call with 'stack does not exist' and records the action."""

    calls: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
        content_type = self.headers.get("Content-Type") or ""
        if "json" in content_type:  # the AWS JSON protocol (newer SDKs), action in X-Amz-Target
            action = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        else:  # the query protocol: Action=DescribeStacks&...
            action = parse_qs(body).get("Action", [""])[0]
        self.calls.append(action)
        message = f"Stack with id seedance-relay-{STAGE} does not exist"
        if "json" in content_type:
            payload = json.dumps({"__type": "ValidationError", "message": message}).encode()
            headers = {"Content-Type": content_type, "x-amzn-query-error": "ValidationError;Sender"}
        else:
            payload = ("<ErrorResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\">"
                       f"<Error><Type>Sender</Type><Code>ValidationError</Code><Message>{message}</Message>"
                       "</Error><RequestId>stub</RequestId></ErrorResponse>").encode()
            headers = {"Content-Type": "text/xml"}
        self.send_response(400)
        for name, value in {**headers, "Content-Length": str(len(payload))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


@pytest.fixture(scope="module")
def cloudformation_stub() -> Iterator[tuple[str, list[str]]]:
    calls: list[str] = []
    handler = type("Stub", (_CloudFormationStub,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="cfn-stub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {result.returncode}\n--- stdout\n{result.stdout}\n"
                    f"--- stderr\n{result.stderr}")
    return result


def _ensure_osls() -> None:
    """``npm ci --prefix infra`` unless infra/node_modules already matches infra/package-lock.json."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the serverless packaging test needs Node.js >= 20.19 and npm "
                    "(it installs osls from infra/package-lock.json)")
    installed = INFRA / "node_modules" / ".package-lock.json"
    lock = INFRA / "package-lock.json"
    if OSLS.exists() and installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}
    started = time.monotonic()
    _run([npm, "ci", "--prefix", str(INFRA), "--no-audit", "--no-fund"], cwd=ROOT, env=env, timeout=600)
    print(f"npm ci --prefix infra: {time.monotonic() - started:.1f} s")
    assert OSLS.exists(), f"npm ci did not install {OSLS}"


def _offline_env(home: Path, cloudformation_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLS_", "SERVERLESS_"))}
    env.update({
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        # Every AWS endpoint is a closed port, except CloudFormation: the stub.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_CLOUDFORMATION": cloudformation_url,
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
        "NODE_NO_WARNINGS": "1",
    })
    return env


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory,
             cloudformation_stub: tuple[str, list[str]]) -> Packaged:
    _ensure_osls()
    work = tmp_path_factory.mktemp("sls")
    shutil.copy2(ROOT / "serverless.yml", work / "serverless.yml")
    shutil.copytree(INFRA, work / "infra", ignore=shutil.ignore_patterns("node_modules"))
    shutil.copytree(ROOT / "handlers", work / "handlers", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # The layers are built by infra/build-layer.sh (it downloads wheels); a placeholder in each
    # lets osls package them without it.
    for layer in LAYERS:
        (work / ".layer" / layer / "python").mkdir(parents=True)
        (work / ".layer" / layer / "python" / "PLACEHOLDER.txt").write_text("built by infra/build-layer.sh\n")
    home = work / ".home"
    home.mkdir()
    url, calls = cloudformation_stub
    started = time.monotonic()
    _run([str(OSLS), "package", "--stage", STAGE, "--region", REGION], cwd=work,
         env=_offline_env(home, url), timeout=300)
    seconds = time.monotonic() - started
    print(f"osls package: {seconds:.1f} s")
    template_path = work / ".serverless" / "cloudformation-template-update-stack.json"
    template = json.loads(template_path.read_text(encoding="utf-8"))
    return Packaged(template=template, directory=work / ".serverless", aws_calls=list(calls), seconds=seconds)


# --- helpers ---------------------------------------------------------------------------


def _target(value: Any) -> str | None:
    """The logical id a Ref / GetAtt points at."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return str(att[0] if isinstance(att, list) else att.split(".")[0])
    return None


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"].get("Policies", [])
            for s in _listify(policy["PolicyDocument"]["Statement"])]


def _function_role(packaged: Packaged, function: str) -> str:
    logical_id = FUNCTIONS[function][0]
    role = _target(packaged.props(logical_id)["Role"])
    assert role is not None, f"{function}: Role is not a reference to a role in this stack"
    return role


def _grants(packaged: Packaged, function: str) -> dict[str, list[Any]]:
    """action -> the resources the function's role allows it on."""
    grants: dict[str, list[Any]] = {}
    for statement in _statements(packaged.resources[_function_role(packaged, function)]):
        assert statement["Effect"] == "Allow"
        for action in _listify(statement["Action"]):
            grants.setdefault(action, []).extend(_listify(statement["Resource"]))
    return grants


def _mentions(resource: Any) -> set[str]:
    """The logical ids (and SSM parameter names) a policy resource refers to."""
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        text = resource["Fn::Sub"] if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"][0]
        names = {m.split(".")[0] for m in re.findall(r"\$\{([A-Za-z0-9.]+)\}", text)}
        names |= set(re.findall(r":parameter(/\S+)$", text))
        return names - {"AWS"}
    target = _target(resource)
    return {target} if target else set()


def _queue_consumers(packaged: Packaged) -> dict[str, str]:
    """queue logical id -> consuming function logical id (from the event source mappings)."""
    consumers = {}
    for mapping in packaged.of_type("AWS::Lambda::EventSourceMapping").values():
        queue = _target(mapping["Properties"]["EventSourceArn"])
        function = _target(mapping["Properties"]["FunctionName"])
        assert queue and function
        consumers[queue] = function
    return consumers


def _dead_letter_queues(packaged: Packaged) -> dict[str, str]:
    """queue -> its dead-letter queue."""
    return {name: str(_target(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
            for name, q in packaged.of_type("AWS::SQS::Queue").items()
            if "RedrivePolicy" in q.get("Properties", {})}


# --- the template ----------------------------------------------------------------------


def test_cfn_lint_reports_no_errors(packaged: Packaged) -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    assert cfn_lint.exists(), f"cfn-lint is not installed beside {sys.executable} (pip install -e '.[dev]')"
    template = packaged.directory / "cloudformation-template-update-stack.json"
    result = subprocess.run([str(cfn_lint), "--format", "json", str(template)],
                            capture_output=True, text=True, timeout=300, check=False)
    try:
        findings = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        pytest.fail(f"cfn-lint did not run (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    for finding in findings:
        if finding["Level"] != "Error":
            path = "/".join(str(p) for p in finding["Location"]["Path"])
            print(f"cfn-lint {finding['Level']} {finding['Rule']['Id']} at {path}: {finding['Message']}")
    errors = [f"{f['Rule']['Id']} {'/'.join(map(str, f['Location']['Path']))}: {f['Message']}"
              for f in findings if f["Level"] == "Error"]
    assert errors == [], "cfn-lint errors:\n" + "\n".join(errors)


def test_packaging_makes_no_aws_call_but_the_stub_describe_stacks(packaged: Packaged) -> None:
    assert set(packaged.aws_calls) <= {"DescribeStacks"}, packaged.aws_calls


def test_every_function_has_its_handler_runtime_timeout_and_the_layer(packaged: Packaged) -> None:
    for function, (logical_id, handler, timeout) in FUNCTIONS.items():
        props = packaged.props(logical_id)
        assert props["Handler"] == handler, function
        assert props["Runtime"] == "python3.11", function
        assert props["Timeout"] == timeout, function
        assert props["Architectures"] == ["arm64"], function
        assert {"Ref": "DepsLambdaLayer"} in props["Layers"], function
        assert props["Environment"]["Variables"]["RELAY_BACKEND"] == "aws", function
        assert props["Environment"]["Variables"]["RELAY_LOG_FORMAT"] == "json", function
    assert packaged.props("ApiLambdaFunction")["MemorySize"] == 512
    assert packaged.props("IngestLambdaFunction")["MemorySize"] == 1024
    layer = packaged.props("DepsLambdaLayer")
    assert layer["CompatibleRuntimes"] == ["python3.11"]
    assert layer["CompatibleArchitectures"] == ["arm64"]


def test_each_function_gets_its_layers_within_lambdas_limit_of_five(packaged: Packaged) -> None:
    for function, (logical_id, _, _) in FUNCTIONS.items():
        layers = packaged.props(logical_id)["Layers"]
        assert layers == [{"Ref": LAYERS[name]} for name in FUNCTION_LAYERS[function]], function
        assert len(layers) <= 5, function
    assert set(packaged.of_type("AWS::Lambda::LayerVersion")) == set(LAYERS.values())
    for name, logical_id in LAYERS.items():
        layer = packaged.props(logical_id)
        assert layer["LayerName"] == f"seedance-relay-{STAGE}-{name}"
        assert (layer["CompatibleRuntimes"], layer["CompatibleArchitectures"]) == (["python3.11"], ["arm64"]), name


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_artifact_holds_only_its_python_tree(packaged: Packaged, layer: str) -> None:
    with zipfile.ZipFile(packaged.directory / f"{layer}.zip") as archive:
        names = archive.namelist()
    assert names == ["python/PLACEHOLDER.txt"], names


def test_function_package_holds_only_the_handlers_package(packaged: Packaged) -> None:
    with zipfile.ZipFile(packaged.directory / "seedance-relay.zip") as archive:
        names = archive.namelist()
    assert "handlers/lambdas/api.py" in names
    outside = [n for n in names if not n.startswith("handlers/") or "__pycache__" in n or n.endswith(".pyc")]
    assert outside == []


def test_resources_reach_functions_as_refs(packaged: Packaged) -> None:
    variables = packaged.props("IngestLambdaFunction")["Environment"]["Variables"]
    assert _target(variables["RELAY_TABLE"]) == "JobsTable"
    assert _target(variables["RELAY_BUCKET"]) == "VideosBucket"
    assert variables["RELAY_INGEST_QUEUE"] == {"Ref": "IngestQueue"}  # Ref of a queue is its URL
    assert variables["RELAY_REQUESTS_QUEUE"] == {"Ref": "RequestsQueue"}
    assert variables["RELAY_TOPIC"] == {"Ref": "EventsTopic"}  # Ref of a topic is its ARN
    assert variables["RELAY_SUBSCRIBERS"] == "example:completed"
    prefix = variables["RELAY_SUBSCRIBER_QUEUE_PREFIX"]["Fn::Sub"]
    assert prefix.endswith(packaged.props("ExampleSubscriberQueue")["QueueName"].removesuffix("example"))


def test_sqs_triggers_report_batch_item_failures(packaged: Packaged) -> None:
    consumers = _queue_consumers(packaged)
    for function, queue in SQS_CONSUMERS.items():
        assert consumers.get(queue) == FUNCTIONS[function][0], f"{queue} is not consumed by {function}"
    for name, mapping in packaged.of_type("AWS::Lambda::EventSourceMapping").items():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
    ingest = next(m for m in packaged.of_type("AWS::Lambda::EventSourceMapping").values()
                  if _target(m["Properties"]["EventSourceArn"]) == "IngestQueue")
    assert ingest["Properties"]["BatchSize"] == 5


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(packaged: Packaged) -> None:
    consumers = _queue_consumers(packaged)
    assert set(consumers) == set(SQS_CONSUMERS.values())
    for queue, function in consumers.items():
        visibility = packaged.props(queue)["VisibilityTimeout"]
        timeout = packaged.props(function)["Timeout"]
        assert visibility >= 6 * timeout, f"{queue}: VisibilityTimeout {visibility} < 6 x {function} {timeout} s"


def test_every_work_queue_has_a_dead_letter_queue_and_encryption(packaged: Packaged) -> None:
    queues = packaged.of_type("AWS::SQS::Queue")
    dlqs = _dead_letter_queues(packaged)
    assert set(dlqs) == {"IngestQueue", "RequestsQueue", "ExampleSubscriberQueue"}
    assert set(dlqs) | set(dlqs.values()) == set(queues), "a queue is neither a work queue nor a DLQ"
    for name, queue in queues.items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, name
        if name in dlqs:
            assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 8, name


def test_every_dead_letter_queue_has_an_alarm(packaged: Packaged) -> None:
    watched = {}
    for name, alarm in packaged.of_type("AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if props.get("Namespace") != "AWS/SQS":
            continue
        assert props["MetricName"] == "ApproximateNumberOfMessagesVisible", name
        assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] == 0, name
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        for dimension in props["Dimensions"]:
            if dimension["Name"] == "QueueName":
                watched[_target(dimension["Value"])] = name
    for queue, dlq in _dead_letter_queues(packaged).items():
        assert dlq in watched, f"{queue}'s DLQ {dlq} has no alarm"


@pytest.mark.parametrize(("alarm", "metric"), [("JobsAtRiskAlarm", "JobsAtRisk"),
                                              ("ResultsExpiredAlarm", "ResultsExpired")])
def test_a_result_at_risk_or_lost_raises_an_alarm_on_the_relays_figure(packaged: Packaged, alarm: str,
                                                                     metric: str) -> None:
    """The reconciler's EMF figure (namespace SeedanceRelay, dimension service) above 0 in five minutes."""
    props = packaged.props(alarm)
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("SeedanceRelay", metric, "Sum")
    assert [d["Name"] for d in props["Dimensions"]] == ["service"]
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] == 0
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}] and props["TreatMissingData"] == "notBreaching"


def test_bucket_is_encrypted_private_tls_only_and_aborts_stale_uploads(packaged: Packaged) -> None:
    bucket = packaged.props("VideosBucket")
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    aborts = [r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
              for r in bucket["LifecycleConfiguration"]["Rules"]
              if r.get("Status") == "Enabled" and "AbortIncompleteMultipartUpload" in r]
    assert aborts == [1]
    policies = [p["Properties"] for p in packaged.of_type("AWS::S3::BucketPolicy").values()
                if _target(p["Properties"]["Bucket"]) == "VideosBucket"]
    assert len(policies) == 1
    denies = [s for s in policies[0]["PolicyDocument"]["Statement"]
              if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
    assert denies, "the bucket policy does not deny plain-HTTP access"


def test_table_has_its_indexes_ttl_recovery_and_encryption(packaged: Packaged) -> None:
    table = packaged.props("JobsTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    indexes = {i["IndexName"]: ([(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]],
                                i["Projection"]["ProjectionType"])
               for i in table["GlobalSecondaryIndexes"]}
    assert indexes["due-index"] == ([("due_shard", "HASH"), ("check_at", "RANGE")], "ALL")
    assert indexes["created-index"][0] == [("kind", "HASH"), ("created_key", "RANGE")]
    assert indexes["status-index"][0] == [("status", "HASH"), ("created_key", "RANGE")]
    assert indexes["tenant-index"][0] == [("tenant", "HASH"), ("created_key", "RANGE")]
    assert indexes["event-log-index"][0] == [("log_day", "HASH"), ("log_key", "RANGE")]
    assert types == {"id": "S", "due_shard": "S", "check_at": "N", "kind": "S", "created_key": "S", "status": "S",
                     "tenant": "S", "log_day": "S", "log_key": "S"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_no_secret_is_in_any_environment(packaged: Packaged) -> None:
    for function, (logical_id, _, _) in FUNCTIONS.items():
        variables = packaged.props(logical_id)["Environment"]["Variables"]
        for secret in SECRETS:
            assert secret not in variables, f"{function}: {secret} is in the environment"
        assert "{{resolve:" not in json.dumps(variables), f"{function}: a dynamic reference puts a secret in env"
        params = {name.removesuffix("_PARAM"): value for name, value in variables.items() if name.endswith("_PARAM")}
        assert set(params) <= set(SECRETS), function
        names = set()
        for secret, value in params.items():
            assert isinstance(value, str) and value.startswith(SSM_PREFIX), f"{function}: {secret}_PARAM={value!r}"
            names.add(value.removeprefix(SSM_PREFIX))
        assert names == SECRET_PARAMS[function], function


def test_each_function_has_its_own_role(packaged: Packaged) -> None:
    roles = {function: _function_role(packaged, function) for function in FUNCTIONS}
    assert len(set(roles.values())) == len(roles), roles
    for role in roles.values():
        assert packaged.resources[role]["Type"] == "AWS::IAM::Role"
        assert "ManagedPolicyArns" not in packaged.resources[role]["Properties"]
    assert "IamRoleLambdaExecution" not in packaged.resources


def test_no_role_grants_wildcard_actions_or_resources(packaged: Packaged) -> None:
    for name, role in packaged.of_type("AWS::IAM::Role").items():
        for statement in _statements(role):
            actions = _listify(statement["Action"])
            resources = _listify(statement.get("Resource", []))
            for action in actions:
                assert action != "*" and not action.endswith(":*"), f"{name}: {action}"
                if action.split(":")[0] in RESOURCE_SCOPED_SERVICES:
                    assert "*" not in resources, f"{name}: {action} on Resource '*'"
            if any(a.startswith("logs:") for a in actions):
                assert all(str(_target(r)).endswith("LogGroup") for r in resources), name
            if "kms:Decrypt" in actions:
                assert "kms:ViaService" in statement["Condition"]["StringEquals"], name


def test_roles_hold_only_what_their_function_uses(packaged: Packaged) -> None:
    def on(function: str, action: str) -> set[str]:
        grants = _grants(packaged, function)
        return set().union(*(_mentions(r) for r in grants[action])) if action in grants else set()

    for function, (logical_id, _, _) in FUNCTIONS.items():
        log_group = logical_id.removesuffix("LambdaFunction") + "LogGroup"
        assert on(function, "logs:PutLogEvents") == {log_group}, function
        assert on(function, "ssm:GetParameter") == {SSM_PREFIX + p for p in SECRET_PARAMS[function]}, function
    # exampleConsumer: its own queue and its logs, nothing else.
    consumer = _grants(packaged, "exampleConsumer")
    assert {a.split(":")[0] for a in consumer} == {"logs", "sqs"}
    assert on("exampleConsumer", "sqs:ReceiveMessage") == {"ExampleSubscriberQueue"}
    # The SQS consumers may read only the queue that triggers them.
    assert on("ingest", "sqs:ReceiveMessage") == {"IngestQueue"}
    assert on("submit", "sqs:ReceiveMessage") == {"RequestsQueue"}
    for function in ("api", "reconcile"):
        assert on(function, "sqs:ReceiveMessage") == set(), function
        assert on(function, "sqs:SendMessage") == {"IngestQueue"}, function
    for function in ("api", "ingest", "reconcile", "submit"):
        assert on(function, "sns:Publish") == {"EventsTopic"}, function
        assert on(function, "dynamodb:UpdateItem") == {"JobsTable"}, function
    # Only the API accepts callbacks, whose job lookup is one BatchGetItem per batch.
    assert on("api", "dynamodb:BatchGetItem") == {"JobsTable"}
    for function in ("ingest", "reconcile", "submit"):
        assert on(function, "dynamodb:BatchGetItem") == set(), function
    assert on("ingest", "s3:PutObject") == {"VideosBucket"}
    assert on("ingest", "s3:AbortMultipartUpload") == {"VideosBucket"}
    for function in ("reconcile", "submit"):
        assert not any(a.startswith("s3:") for a in _grants(packaged, function)), function


def test_subscriptions_deliver_raw_filtered_events_to_queues_only_the_topic_may_send_to(packaged: Packaged) -> None:
    subscriptions = packaged.of_type("AWS::SNS::Subscription")
    to_queues = {name: s["Properties"] for name, s in subscriptions.items() if s["Properties"]["Protocol"] == "sqs"}
    assert to_queues, "no subscriber queue is subscribed to the events topic"
    for name, props in to_queues.items():
        assert _target(props["TopicArn"]) == "EventsTopic", name
        assert props["RawMessageDelivery"] in (True, "true"), name
        assert "type" in props["FilterPolicy"], name
    example = next(p for p in to_queues.values() if _target(p["Endpoint"]) == "ExampleSubscriberQueue")
    assert example["FilterPolicy"] == {"type": ["io.seedance-relay.job.completed"]}
    assert example.get("FilterPolicyScope", "MessageAttributes") == "MessageAttributes"
    subscribed = {_target(p["Endpoint"]) for p in to_queues.values()}
    for queue in subscribed:
        policies = [p["Properties"]["PolicyDocument"] for p in packaged.of_type("AWS::SQS::QueuePolicy").values()
                    if {"Ref": queue} in p["Properties"]["Queues"]]
        assert len(policies) == 1, queue
        for statement in policies[0]["Statement"]:
            assert statement["Principal"] == {"Service": "sns.amazonaws.com"}, queue
            assert _listify(statement["Action"]) == ["sqs:SendMessage"], queue
            assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "EventsTopic"}, queue


def test_http_api_function_url_and_public_url(packaged: Packaged) -> None:
    assert packaged.resources["HttpApi"]["Type"] == "AWS::ApiGatewayV2::Api"
    routes = {r["Properties"]["RouteKey"] for r in packaged.of_type("AWS::ApiGatewayV2::Route").values()}
    assert routes == {"ANY /{proxy+}", "ANY /"}
    integrations = packaged.of_type("AWS::ApiGatewayV2::Integration").values()
    assert [i["Properties"]["PayloadFormatVersion"] for i in integrations] == ["2.0"]
    urls = packaged.of_type("AWS::Lambda::Url")
    assert [(u["Properties"]["AuthType"], _target(u["Properties"]["TargetFunctionArn"])) for u in urls.values()] == [
        ("NONE", "ApiLambdaFunction")]
    for function, (logical_id, _, _) in FUNCTIONS.items():
        public = packaged.props(logical_id)["Environment"]["Variables"]["RELAY_PUBLIC_URL"]
        assert public == {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}, function


def test_reconciler_runs_every_five_minutes(packaged: Packaged) -> None:
    rules = [r["Properties"] for r in packaged.of_type("AWS::Events::Rule").values()]
    assert [(r["ScheduleExpression"], _target(r["Targets"][0]["Arn"])) for r in rules] == [
        ("rate(5 minutes)", "ReconcileLambdaFunction")]


def test_topic_and_bucket_are_exported(packaged: Packaged) -> None:
    outputs = packaged.template["Outputs"]
    assert outputs["EventsTopicArn"]["Value"] == {"Ref": "EventsTopic"}
    assert outputs["VideosBucketName"]["Value"] == {"Ref": "VideosBucket"}
    for name in ("EventsTopicArn", "VideosBucketName", "RequestsQueueUrl", "RequestsQueueArn"):
        assert outputs[name]["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-" + name}


def test_bucket_expires_uploads_and_by_a_parameter_everything_under_jobs(packaged: Packaged) -> None:
    """Uploads go after UploadRetentionDays (1); jobs/ only when VideoRetentionDays is not 0 (its default)."""
    rules = packaged.props("VideosBucket")["LifecycleConfiguration"]["Rules"]
    uploads = [r for r in rules if r.get("Id") == "expire-uploads"]
    assert uploads == [{"Id": "expire-uploads", "Status": "Enabled", "Prefix": "uploads/",
                        "ExpirationInDays": {"Ref": "UploadRetentionDays"}}]
    (videos,) = [r["Fn::If"] for r in rules if "Fn::If" in r]
    assert videos == ["ExpiresVideos", {"Id": "expire-job-files", "Status": "Enabled", "Prefix": "jobs/",
                                        "ExpirationInDays": {"Ref": "VideoRetentionDays"}}, {"Ref": "AWS::NoValue"}]
    assert packaged.template["Conditions"]["ExpiresVideos"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "VideoRetentionDays"}, "0"]}]}
    parameters = packaged.template["Parameters"]
    assert (parameters["VideoRetentionDays"]["Default"], parameters["UploadRetentionDays"]["Default"]) == (0, 1)
    assert parameters["UploadRetentionDays"]["MinValue"] == 1


def test_retention_params_reach_the_stack_and_the_functions(packaged: Packaged) -> None:
    """The osls params videoRetention and uploadRetention are stack parameters; jobRetention is every
    function's RELAY_JOB_RETENTION, the days the table's TTL keeps a finished job."""
    import yaml

    provider = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))["provider"]
    given = {p["ParameterKey"]: p["ParameterValue"] for p in provider["stackParameters"]}
    assert given["VideoRetentionDays"] == "${param:videoRetention}"
    assert given["UploadRetentionDays"] == "${param:uploadRetention}"
    assert packaged.props("JobsTable")["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    for function, (logical_id, _, _) in FUNCTIONS.items():
        assert packaged.props(logical_id)["Environment"]["Variables"]["RELAY_JOB_RETENTION"] == "90", function
