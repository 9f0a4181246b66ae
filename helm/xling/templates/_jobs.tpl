{{/* Specs of the batch Jobs, rendered once so their digest can name them. */}}

{{- define "xling.translateJobSpec" -}}
{{- $job := .root.Values.translateJob -}}
{{- $args := list "translate-corpus" (printf "/input/%s" $job.input.file) "--to" $job.targetLanguage -}}
{{- with $job.sourceLanguage }}
{{- $args = concat $args (list "--from" .) -}}
{{- end }}
{{- /* The Job controller sets JOB_COMPLETION_INDEX; Kubernetes expands $(VAR) in args. */}}
{{- $args = concat $args (list "--output" "/output/part-$(JOB_COMPLETION_INDEX).jsonl" "--resume") -}}
{{- $input := include "xling.claimMount" (dict "name" "input" "path" "/input" "subPath" $job.input.subPath "readOnly" true) | fromYaml -}}
{{- $volumes := list -}}
{{- $output := dict -}}
{{- if eq $job.output.existingClaim $job.input.existingClaim -}}
{{- /* One volume per claim: some volume drivers stall on a pod that names a claim twice. */}}
{{- $output = include "xling.claimMount" (dict "name" "input" "path" "/output" "subPath" $job.output.subPath "readOnly" false) | fromYaml -}}
{{- $volumes = list (dict "name" "input" "persistentVolumeClaim" (dict "claimName" $job.input.existingClaim)) -}}
{{- else -}}
{{- $output = include "xling.claimMount" (dict "name" "output" "path" "/output" "subPath" $job.output.subPath "readOnly" false) | fromYaml -}}
{{- $volumes = list
  (dict "name" "input" "persistentVolumeClaim" (dict "claimName" $job.input.existingClaim "readOnly" true))
  (dict "name" "output" "persistentVolumeClaim" (dict "claimName" $job.output.existingClaim)) -}}
{{- end -}}
{{- $env := list (dict "name" "XLING_SHARD_COUNT" "value" (toString $job.completions)) -}}
completionMode: Indexed
completions: {{ $job.completions }}
parallelism: {{ $job.parallelism }}
backoffLimitPerIndex: {{ $job.backoffLimitPerIndex }}
{{- with $job.ttlSecondsAfterFinished }}
ttlSecondsAfterFinished: {{ . }}
{{- end }}
template:
  metadata:
    labels:
      {{- include "xling.labels" .root | nindent 6 }}
      app.kubernetes.io/component: translate
  spec:
    {{- include "xling.clientPodSpec" (dict "root" .root "name" "translate-corpus" "args" $args "target" (include "xling.readTarget" .root) "resources" $job.resources "env" $env "mounts" (list $input $output) "volumes" $volumes) | nindent 4 }}
{{- end -}}

{{- define "xling.indexJobSpec" -}}
{{- $job := .root.Values.indexJob -}}
{{- $input := include "xling.claimMount" (dict "name" "input" "path" "/input" "subPath" $job.input.subPath "readOnly" true) | fromYaml -}}
{{- $volumes := list (dict "name" "input" "persistentVolumeClaim" (dict "claimName" $job.input.existingClaim "readOnly" true)) -}}
{{- $args := list "index" $job.collection (printf "/input/%s" $job.input.file) -}}
backoffLimit: {{ $job.backoffLimit }}
{{- with $job.ttlSecondsAfterFinished }}
ttlSecondsAfterFinished: {{ . }}
{{- end }}
template:
  metadata:
    labels:
      {{- include "xling.labels" .root | nindent 6 }}
      app.kubernetes.io/component: index
  spec:
    {{- include "xling.clientPodSpec" (dict "root" .root "name" "index" "args" $args "target" (include "xling.writeTarget" .root) "resources" $job.resources "env" (list) "mounts" (list $input) "volumes" $volumes) | nindent 4 }}
{{- end -}}

{{- define "xling.claimMount" -}}
name: {{ .name }}
mountPath: {{ .path }}
{{- with .subPath }}
subPath: {{ . }}
{{- end }}
{{- if .readOnly }}
readOnly: true
{{- end }}
{{- end -}}
