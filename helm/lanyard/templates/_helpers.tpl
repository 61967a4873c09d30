{{/*
Names and labels.
*/}}
{{- define "lanyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lanyard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lanyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lanyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lanyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lanyard.labels" -}}
helm.sh/chart: {{ include "lanyard.chart" . }}
{{ include "lanyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: authorization-server
{{- end }}

{{- define "lanyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lanyard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lanyard.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The store.
*/}}
{{- define "lanyard.redis" -}}
{{- if eq .Values.store.backend "redis" }}true{{ end }}
{{- end }}

{{- define "lanyard.redisSecretName" -}}
{{- if .Values.store.redis.existingSecret }}
{{- .Values.store.redis.existingSecret }}
{{- else }}
{{- printf "%s-redis" (include "lanyard.fullname" .) }}
{{- end }}
{{- end }}

{{- define "lanyard.redisSecretKey" -}}
{{- if .Values.store.redis.existingSecret }}
{{- .Values.store.redis.existingSecretKey }}
{{- else }}redis-url{{- end }}
{{- end }}

{{/*
How many pods can run at once: more than one only with autoscaling or replicas > 1.
*/}}
{{- define "lanyard.multiReplica" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{/*
The Secret holding a role's keyring: "lanyard.keysSecretName" (dict "root" $ "role" "idp").
*/}}
{{- define "lanyard.keysSecretName" -}}
{{- $k := index .root.Values.keys .role }}
{{- if $k.existingSecret }}
{{- $k.existingSecret }}
{{- else }}
{{- printf "%s-keys-%s" (include "lanyard.fullname" .root) .role }}
{{- end }}
{{- end }}

{{/*
A policy file path as a ConfigMap/Secret key ("/" is not allowed there).
*/}}
{{- define "lanyard.policyKey" -}}
{{- . | replace "/" "__" }}
{{- end }}

{{- define "lanyard.policySource" -}}
{{- if .Values.policy.existingSecret }}existingSecret
{{- else if .Values.policy.existingConfigMap }}existingConfigMap
{{- else }}chart{{- end }}
{{- end }}

{{/*
Refuse what cannot work, with a message that names the value. values.schema.json refuses
most of this too; these checks also hold under --skip-schema-validation.
*/}}
{{- define "lanyard.validate" -}}
{{- $v := .Values }}
{{- if and (ne $v.store.backend "embedded") (ne $v.store.backend "redis") }}
{{- fail (printf "store.backend must be \"embedded\" or \"redis\", not %q" $v.store.backend) }}
{{- end }}
{{- if and (not (include "lanyard.redis" .)) (gt (int $v.replicas) 1) }}
{{- fail "replicas > 1 needs store.backend: redis (the embedded store is one file on one node)" }}
{{- end }}
{{- if and (not (include "lanyard.redis" .)) $v.autoscaling.enabled }}
{{- fail "autoscaling.enabled needs store.backend: redis (the embedded store is one file on one node)" }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- if lt (int $v.autoscaling.maxReplicas) (int $v.autoscaling.minReplicas) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- end }}
{{- if and (include "lanyard.redis" .) (not $v.store.redis.existingSecret) (not $v.store.redis.url) }}
{{- fail "store.backend redis needs store.redis.existingSecret (a Secret with the Redis URL) or store.redis.url" }}
{{- end }}
{{- if not (or $v.config.idp.enabled $v.config.authorizationServer.enabled) }}
{{- fail "enable at least one role: config.idp.enabled or config.authorizationServer.enabled" }}
{{- end }}
{{- if $v.config.idp.enabled }}
{{- $_ := required "config.idp.issuer is required when config.idp.enabled (e.g. https://lanyard.example.com/idp)" $v.config.idp.issuer }}
{{- if not (or $v.keys.idp.existingSecret $v.keys.idp.files) }}
{{- fail "keys.idp.existingSecret is required when config.idp.enabled (kubectl create secret generic NAME --from-file=keys/local/idp/)" }}
{{- end }}
{{- end }}
{{- if $v.config.authorizationServer.enabled }}
{{- $_ := required "config.authorizationServer.issuer is required when config.authorizationServer.enabled (e.g. https://lanyard.example.com/as)" $v.config.authorizationServer.issuer }}
{{- if not (or $v.keys.as.existingSecret $v.keys.as.files) }}
{{- fail "keys.as.existingSecret is required when config.authorizationServer.enabled (kubectl create secret generic NAME --from-file=keys/local/as/)" }}
{{- end }}
{{- end }}
{{- if and $v.config.idp.enabled $v.config.authorizationServer.enabled $v.config.idp.issuer }}
{{- if eq (trimSuffix "/" $v.config.idp.issuer) (trimSuffix "/" $v.config.authorizationServer.issuer) }}
{{- fail "config.idp.issuer and config.authorizationServer.issuer must differ: the two roles are separate trust domains" }}
{{- end }}
{{- end }}
{{- if gt (int $v.config.server.maxTokenBytes) (int $v.config.server.maxBodyBytes) }}
{{- fail "config.server.maxTokenBytes must be at most config.server.maxBodyBytes" }}
{{- end }}
{{- if and $v.policy.existingSecret $v.policy.existingConfigMap }}
{{- fail "set one of policy.existingSecret and policy.existingConfigMap, not both" }}
{{- end }}
{{- if and (eq (include "lanyard.policySource" .) "chart") (not (hasKey $v.policy.files $v.policy.fileName)) }}
{{- fail (printf "the policy is required: set policy.files[%q], policy.existingConfigMap or policy.existingSecret" $v.policy.fileName) }}
{{- end }}
{{- $minGrace := add (int $v.lifecycle.preStopSleepSeconds) (int $v.config.server.shutdownGraceSeconds) 1 }}
{{- if lt (int $v.terminationGracePeriodSeconds) (int $minGrace) }}
{{- fail (printf "terminationGracePeriodSeconds must be at least lifecycle.preStopSleepSeconds + config.server.shutdownGraceSeconds + 1 = %d" (int $minGrace)) }}
{{- end }}
{{- end }}
