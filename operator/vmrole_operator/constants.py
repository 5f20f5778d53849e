"""Names that form the public contract (see docs/SEMANTICS.md, "API v1alpha1").

Every label, annotation and well-known object name lives here so the handlers, the builders,
the kubectl plugin and the tests cannot drift apart.
"""

from typing import Final

GROUP: Final = "vmrole.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "VMRole"
LIST_KIND: Final = "VMRoleList"
PLURAL: Final = "vmroles"
SINGULAR: Final = "vmrole"
SHORT_NAMES: Final = ["vmr"]
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# Labels.
ROLE_LABEL: Final = "vmrole.dev/role"
PEER_GROUP_LABEL: Final = "vmrole.dev/peer-group"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "vmrole-operator"
APP_NAME_LABEL: Final = "app.kubernetes.io/name"
APP_INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
APP_NAME: Final = "vmrole"  # app.kubernetes.io/name of the objects made for a role
OPERATOR_APP_LABEL: Final = APP_NAME_LABEL
OPERATOR_APP: Final = "vmrole-operator"  # app.kubernetes.io/name of the operator's own pods
NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"  # set on every namespace by the API server

# Named instances (`web_IN_0`): the label says which pod holds a name, the annotation which name a pod
# runs as (set when it is created, so setup can read it; state/names.py has the rules).
INSTANCE_LABEL: Final = "vmrole.dev/instance"
INSTANCE_NAME_ANNOTATION: Final = "vmrole.dev/instance-name"
INSTANCE_NAME_INFIX: Final = "_IN_"
POD_DELETION_COST_ANNOTATION: Final = "controller.kubernetes.io/pod-deletion-cost"

# Request annotations (pod or VMRole).
REIMAGE_ANNOTATION: Final = "vmrole.dev/reimage"
REBOOT_ANNOTATION: Final = "vmrole.dev/reboot"
BUSY_ANNOTATION: Final = "vmrole.dev/busy"

# The role's input Service selects instances carrying IN_ROTATION_LABEL=true. The pod template sets
# it, so a new instance enters rotation on its kubelet readiness alone, operator or not; the operator
# sets it to "false" to take a ready instance out (busy, and the drain before a reimage or reboot).
IN_ROTATION_LABEL: Final = "vmrole.dev/in-rotation"
ROTATION_CHANGED_ANNOTATION: Final = "vmrole.dev/rotation-changed"  # when the operator last flipped it
IN_ROTATION: Final = "true"
OUT_FOR_BUSY: Final = "busy"
OUT_FOR_REIMAGE: Final = "reimage"
OUT_FOR_REBOOT: Final = "reboot"

# Each auto-start check beyond the first is the readiness probe of one more container of the pod,
# named CHECK_CONTAINER_PREFIX + check name, running an image every node already has.
CHECK_CONTAINER_PREFIX: Final = "check-"
MAX_CHECK_NAME_LENGTH: Final = 63 - len(CHECK_CONTAINER_PREFIX)
DEFAULT_CHECK_IMAGE: Final = "registry.k8s.io/pause:3.10.1"  # the sandbox image: on every node
CHECK_IMAGE_ENV: Final = "VMROLE_CHECK_IMAGE"

# Names inside the pod.
MAIN_CONTAINER: Final = "role"
SETUP_CONTAINER: Final = "setup"
EPHEMERAL_DISK_VOLUME: Final = "ephemeral-disk"
ANSWER_FILE_VOLUME: Final = "answer-file"
ROLE_ENVIRONMENT_VOLUME: Final = "role-environment"
SETTINGS_VOLUME: Final = "settings"

# The role environment inside every instance (Azure's RoleEnvironment), readable from setup on.
ROLE_ENVIRONMENT_DIR: Final = "/etc/vmrole/role"  # instance-id, instances
SETTINGS_DIR: Final = "/etc/vmrole/settings"  # one file per spec.settings key
INSTANCE_ID_FILE: Final = "instance-id"
INSTANCES_FILE: Final = "instances"
# A pod annotation the operator moves when the files' content changed: the kubelet syncs a pod on
# every change to it, and refreshes its ConfigMap and downward-API files then, within a second or
# two, instead of at its next periodic sync (up to a minute and more).
ENVIRONMENT_ANNOTATION: Final = "vmrole.dev/environment"
SETTINGS_ROUND_ANNOTATION: Final = "vmrole.dev/settings"  # pod template, settingsChange: Reimage

DEFAULT_RUN_AS_USER: Final = 65532
DEFAULT_RUN_AS_GROUP: Final = 65532

# Child object names are <role name><suffix>.
INTERNAL_SERVICE_SUFFIX: Final = "-internal"
ANSWER_FILE_CONFIGMAP_SUFFIX: Final = "-answer-file"
SETTINGS_CONFIGMAP_SUFFIX: Final = "-settings"
TOPOLOGY_CONFIGMAP_SUFFIX: Final = "-instances"

# 63 (DNS-1035 label) minus len("-internal"): keeps every child name a valid Service name.
MAX_ROLE_NAME_LENGTH: Final = 63 - len(INTERNAL_SERVICE_SUFFIX)

OPERATOR_NAMESPACE_DEFAULT: Final = "vmrole-system"

# status.conditions types.
CONDITION_AVAILABLE: Final = "Available"
CONDITION_PROGRESSING: Final = "Progressing"
CONDITION_DEGRADED: Final = "Degraded"
CONDITION_SCHEDULABLE: Final = "Schedulable"

# Image resolution: a short-lived pod per (role, tag) whose only job is to make the kubelet report the
# tag's digest. It carries these instead of ROLE_LABEL so no Service or Deployment ever selects it.
RESOLVER_FOR_LABEL: Final = "vmrole.dev/resolver-for"
RESOLVES_IMAGE_ANNOTATION: Final = "vmrole.dev/resolves-image"
RESOLVER_CONTAINER: Final = "resolve"
# A path no image has: the container fails to start, so nothing from the image ever runs, yet the
# kubelet has already resolved the image and reports its imageID.
RESOLVER_COMMAND: Final = "/.vmrole-resolve-image-only"

# Where kopf keeps its own bookkeeping on our objects.
KOPF_ANNOTATION_PREFIX: Final = "kopf.vmrole.dev"

# Instances the role's Deployment owns carry this; a reimage removes it first, so the ReplicaSet lets
# go of the victim and starts its replacement before the victim leaves rotation (surge first).
IN_POOL_LABEL: Final = "vmrole.dev/in-pool"

# Operator-written progress of requests, kept on the objects themselves so a restarted operator
# resumes every request exactly once.
REBOOT_DONE_ANNOTATION: Final = "vmrole.dev/reboot-done"  # the reboot token already acted on
REBOOT_RESTARTS_ANNOTATION: Final = "vmrole.dev/reboot-restarts"  # restartCount before that reboot
REIMAGE_ROUND_ANNOTATION: Final = "vmrole.dev/reimage-round"  # pod template: the reimage-all token
REIMAGE_STARTED_ANNOTATION: Final = "vmrole.dev/reimage-started"  # when the surge wait began
# The reimage token the operator writes on the instances of a cordoned node (then a UTC timestamp);
# uncordoning withdraws it from instances still serving.
NODE_DRAIN_TOKEN_PREFIX: Final = "node-drain."
# The tag added to (or removed from) a digest reference to make the kubelet restart a container
# with the very same image: containerd resolves `repo:tag@digest` by the digest alone.
REBOOT_IMAGE_TAG: Final = "vmrole-reboot"

# The operator's API client identifies itself with this, so audit logs can tell its writes apart.
USER_AGENT: Final = "vmrole-operator/0.1"
