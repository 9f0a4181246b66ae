{{/*
Pod template of a server: the serving Deployment and the writer StatefulSet.
Call with (dict "root" $ "component" "server"|"writer" "role" ""|"writer"|"replica"
"resources" RESOURCES "dataVolume" true|false); dataVolume false leaves /data to
the StatefulSet's volumeClaimTemplates.
*/}}
{{- define "xling.serverPodTemplate" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $threads := include "xling.threads" (dict "root" $root "resources" .resources) -}}
metadata:
  labels:
    {{- include "xling.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- /* Env comes from the ConfigMap and Secret only at start: their digests roll the pods on change. */}}
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- if include "xling.createSecret" $root }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- end }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "xling.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $values.serviceAccount.automountServiceAccountToken }}
  {{- with include "xling.imagePullSecrets" $root | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  securityContext:
    {{- toYaml $values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ include "xling.terminationGracePeriodSeconds" $root }}
  {{- with include "xling.scheduling" $root | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  containers:
    - name: xling
      image: {{ include "xling.image" $root }}
      imagePullPolicy: {{ $values.image.pullPolicy }}
      args: ["serve"]
      ports:
        - name: grpc
          containerPort: {{ $values.containerPorts.grpc }}
          protocol: TCP
        {{- if $values.metrics.enabled }}
        - name: metrics
          containerPort: {{ $values.metrics.port }}
          protocol: TCP
        {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "xling.fullname" $root }}
      env:
        - name: OMP_NUM_THREADS
          value: {{ $threads | quote }}
        - name: XLING_OMP_NUM_THREADS
          value: {{ $threads | quote }}
        - name: XLING_LOCAL_THREADS
          value: {{ $threads | quote }}
        {{- if .role }}
        - name: XLING_INDEX_ROLE
          value: {{ .role }}
        - name: XLING_SNAPSHOT_DIR
          value: /snapshots
        {{- end }}
        {{- if and $values.mistral.enabled (or $values.mistral.apiKey $values.mistral.existingSecret) }}
        - name: XLING_MISTRAL_API_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "xling.mistralSecretName" $root }}
              key: {{ $values.mistral.existingSecretKey }}
        {{- end }}
        {{- if $values.auth.enabled }}
        - name: XLING_API_KEYS
          valueFrom:
            secretKeyRef:
              name: {{ include "xling.authSecretName" $root }}
              key: {{ $values.auth.secretKeys.apiKeys }}
        {{- end }}
        {{- with $values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- range $probe := list "startupProbe" "livenessProbe" "readinessProbe" }}
      {{- with index $values $probe }}
      {{ $probe }}:
        grpc:
          port: {{ $values.containerPorts.grpc }}
          service: {{ .service | quote }}
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      lifecycle:
        preStop:
          {{- /* Endpoints drop the pod while it sleeps, so the drain after SIGTERM sees no new calls. */}}
          exec:
            command: ["sleep", {{ $values.preStopSleepSeconds | quote }}]
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: tmp
          mountPath: /tmp
        {{- if .role }}
        - name: snapshots
          mountPath: /snapshots
          {{- if eq .role "replica" }}
          readOnly: true
          {{- end }}
        {{- end }}
  volumes:
    {{- /* The root filesystem is read-only: /tmp takes library caches and temporary files. */}}
    - name: tmp
      emptyDir: {}
    {{- if .dataVolume }}
    - name: data
      {{- if and (eq .component "server") (eq $values.search.mode "single") $values.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-data" (include "xling.fullname" $root)) $values.persistence.existingClaim }}
      {{- else if eq .component "writer" }}
      persistentVolumeClaim:
        claimName: {{ $values.persistence.existingClaim }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
    {{- if .role }}
    - name: snapshots
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-snapshots" (include "xling.fullname" $root)) $values.search.snapshots.existingClaim }}
        {{- if eq .role "replica" }}
        readOnly: true
        {{- end }}
    {{- end }}
{{- end -}}

{{/* Node placement of every pod of the release. */}}
{{- define "xling.nodePlacement" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Placement of the server pods, which also spread among themselves. */}}
{{- define "xling.scheduling" -}}
{{- include "xling.nodePlacement" . }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Pod spec of a batch client (xling CLI) calling the service.
Call with (dict "root" $ "name" CONTAINER "args" ARGS "target" HOST:PORT
"resources" RESOURCES "env" EXTRA_ENV "mounts" MOUNTS "volumes" VOLUMES).
*/}}
{{- define "xling.clientPodSpec" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
restartPolicy: Never
serviceAccountName: {{ include "xling.serviceAccountName" $root }}
automountServiceAccountToken: {{ $values.serviceAccount.automountServiceAccountToken }}
{{- with include "xling.imagePullSecrets" $root | trim }}
{{ . }}
{{- end }}
securityContext:
  {{- toYaml $values.podSecurityContext | nindent 2 }}
{{- with include "xling.nodePlacement" $root | trim }}
{{ . }}
{{- end }}
containers:
  - name: {{ .name }}
    image: {{ include "xling.image" $root }}
    imagePullPolicy: {{ $values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      - name: XLING_TARGET
        value: {{ .target | quote }}
      {{- if $values.auth.enabled }}
      - name: XLING_API_KEY
        valueFrom:
          secretKeyRef:
            name: {{ include "xling.authSecretName" $root }}
            key: {{ $values.auth.secretKeys.clientApiKey }}
      {{- end }}
      {{- with .env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    securityContext:
      {{- toYaml $values.containerSecurityContext | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- toYaml .mounts | nindent 6 }}
volumes:
  - name: tmp
    emptyDir: {}
  {{- toYaml .volumes | nindent 2 }}
{{- end -}}
