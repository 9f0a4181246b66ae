{{/* Names, labels and derived settings shared by every template. */}}

{{- define "xling.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* RELEASE-CHART, or RELEASE alone when it already holds the chart name. */}}
{{- define "xling.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "xling.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "xling.labels" -}}
helm.sh/chart: {{ include "xling.chart" . }}
{{ include "xling.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
Selectors hold only labels that never change on upgrade (they are immutable
in Deployments and StatefulSets). Workloads add app.kubernetes.io/component so
that a Service never picks the pods of the writer, a Job or a test.
*/}}
{{- define "xling.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xling.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "xling.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "xling.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "xling.writerName" -}}
{{- printf "%s-writer" (include "xling.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "xling.headlessName" -}}
{{- printf "%s-headless" (include "xling.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Label that lets a client pod through the NetworkPolicy when allowExternal is false. */}}
{{- define "xling.clientLabel" -}}
{{- printf "%s-client" (include "xling.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "xling.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "xling.testImage" -}}
{{- with .Values.tests.image -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "xling.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Address of the Service that takes writes: the writer in replicated mode. */}}
{{- define "xling.writeTarget" -}}
{{- if eq .Values.search.mode "replicated" -}}
{{- printf "%s:%d" (include "xling.writerName" .) (int .Values.service.port) -}}
{{- else -}}
{{- printf "%s:%d" (include "xling.fullname" .) (int .Values.service.port) -}}
{{- end -}}
{{- end -}}

{{- define "xling.readTarget" -}}
{{- printf "%s:%d" (include "xling.fullname" .) (int .Values.service.port) -}}
{{- end -}}

{{/* Secrets: the chart's own Secret holds whatever no existingSecret provides. */}}
{{- define "xling.chartMistralKey" -}}
{{- if and .Values.mistral.enabled .Values.mistral.apiKey (not .Values.mistral.existingSecret) -}}true{{- end -}}
{{- end -}}

{{- define "xling.chartApiKeys" -}}
{{- if and .Values.auth.enabled .Values.auth.apiKeys (not .Values.auth.existingSecret) -}}true{{- end -}}
{{- end -}}

{{- define "xling.chartPostgresDsn" -}}
{{- with .Values.index -}}
{{- if and (eq .backend "pgvector") .postgres.dsn (not .postgres.existingSecret) -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "xling.createSecret" -}}
{{- if or (include "xling.chartMistralKey" .) (include "xling.chartApiKeys" .) (include "xling.chartPostgresDsn" .) -}}true{{- end -}}
{{- end -}}

{{- define "xling.postgresSecretName" -}}
{{- default (include "xling.fullname" .) .Values.index.postgres.existingSecret -}}
{{- end -}}

{{- define "xling.mistralSecretName" -}}
{{- default (include "xling.fullname" .) .Values.mistral.existingSecret -}}
{{- end -}}

{{- define "xling.authSecretName" -}}
{{- default (include "xling.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{/*
Cores the server keeps busy (blocking workers, llama.cpp threads): cpuThreads, else the CPU limit
(else request) of the given resources rounded down, at least 1. Rounding down
keeps the threads within the CFS quota, so they are never throttled.
Call with (dict "root" $ "resources" RESOURCES).
*/}}
{{- define "xling.threads" -}}
{{- if .root.Values.cpuThreads -}}
{{- .root.Values.cpuThreads | int -}}
{{- else -}}
{{- $cpu := toString (dig "limits" "cpu" (dig "requests" "cpu" "1" .resources) .resources) -}}
{{- $millicores := 0 -}}
{{- if hasSuffix "m" $cpu -}}
{{- $millicores = trimSuffix "m" $cpu | atoi -}}
{{- else -}}
{{- $millicores = mulf $cpu 1000 | floor | int -}}
{{- end -}}
{{- max 1 (div $millicores 1000) -}}
{{- end -}}
{{- end -}}

{{/* The pod's grace outlasts the preStop sleep plus the server's drain. */}}
{{- define "xling.terminationGracePeriodSeconds" -}}
{{- $drain := add .Values.preStopSleepSeconds .Values.gracePeriodSeconds -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $drain) -}}
{{- fail (printf "terminationGracePeriodSeconds must exceed preStopSleepSeconds + gracePeriodSeconds (%d)" (int $drain)) -}}
{{- end -}}
{{- .Values.terminationGracePeriodSeconds | int -}}
{{- else -}}
{{- add $drain 10 -}}
{{- end -}}
{{- end -}}

{{/*
A value as an environment string. Helm reads numbers from values files as
float64, which would print large integers as 8.388608e+06.
*/}}
{{- define "xling.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . | toString -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* Settings that depend on each other, checked once with messages that say what to change. */}}
{{- define "xling.validateValues" -}}
{{- $single := eq .Values.search.mode "single" -}}
{{- if and $single .Values.persistence.enabled (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled) -}}
{{- fail "search.mode=single keeps the index in one pod's /data: with persistence.enabled run one replica without autoscaling, or set search.mode=replicated" -}}
{{- end -}}
{{- with .Values.index -}}
{{- if eq .backend "pgvector" -}}
{{- if not (or .postgres.dsn .postgres.existingSecret) -}}
{{- fail "index.backend=pgvector needs index.postgres.existingSecret or index.postgres.dsn" -}}
{{- end -}}
{{- if ne $.Values.search.mode "single" -}}
{{- fail "index.backend=pgvector shares one database between all pods: leave search.mode=single (no writer, no snapshots)" -}}
{{- end -}}
{{- if $.Values.persistence.enabled -}}
{{- fail "index.backend=pgvector keeps no state in the pods: leave persistence.enabled=false" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.auth.enabled (not .Values.auth.apiKeys) (not .Values.auth.existingSecret) -}}
{{- fail "auth.enabled needs auth.apiKeys or auth.existingSecret" -}}
{{- end -}}
{{- if and .Values.mistral.enabled (not .Values.mistral.serverUrl) (not .Values.mistral.apiKey) (not .Values.mistral.existingSecret) -}}
{{- fail "mistral.enabled on La Plateforme needs mistral.apiKey or mistral.existingSecret (or set mistral.serverUrl for a self-hosted endpoint)" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- fail "tls.enabled needs tls.existingSecret, a Secret with tls.crt, tls.key and ca.crt" -}}
{{- end -}}
{{- if and .Values.tls.clientAuth (not (and .Values.tls.enabled .Values.tls.clientSecret)) -}}
{{- fail "tls.clientAuth needs tls.enabled and tls.clientSecret (the certificate the chart's jobs and helm test present)" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" -}}
{{- end -}}
{{- with .Values.translateJob -}}
{{- if and .enabled (not (and .input.existingClaim .output.existingClaim .targetLanguage)) -}}
{{- fail "translateJob.enabled needs translateJob.input.existingClaim, translateJob.output.existingClaim and translateJob.targetLanguage" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.indexJob.enabled (not .Values.indexJob.input.existingClaim) -}}
{{- fail "indexJob.enabled needs indexJob.input.existingClaim" -}}
{{- end -}}
{{- end -}}

{{/* storageClassName of a claim: "" leaves the cluster default, "-" asks for none. */}}
{{- define "xling.storageClass" -}}
{{- if eq . "-" -}}
storageClassName: ""
{{- else if . -}}
storageClassName: {{ . }}
{{- end -}}
{{- end -}}
