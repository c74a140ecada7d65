#!/usr/bin/env pwsh
# PowerShell twin of deploy.sh: same commands, same flags (both -DryRun and --dry-run spellings),
# same '+ ' dry-run lines. See deploy.sh / `deploy.ps1 --help` for what each command does.
# pwsh cannot be installed where this is developed: tests/test_deploy_scripts.py parses this file
# with the tree-sitter PowerShell grammar and checks it offers the commands and flags of deploy.sh.
param(
    [Parameter(Position = 0)][string]$Command = '',
    [switch]$DryRun,
    [ValidateSet('dev', 'prod')][string]$Overlay = 'dev',
    [string]$Namespace = 'tradeops',
    [string]$Image = '',
    [switch]$Yes,
    [switch]$DeleteSecrets,
    [switch]$Help,
    [Parameter(ValueFromRemainingArguments = $true)][string[]]$Rest = @()
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Set-Location -LiteralPath $PSScriptRoot

$ImageName = 'tradeops-airflow'
# The UI user: AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS in k8s/base/configmap-airflow.yaml.
$AdminUser = 'tradeops'
# A second login, for approvals: going back to ACTIVE needs another user than the requester.
$ApproverUser = 'approver'
$MigrateJob = if ($env:TRADEOPS_MIGRATE_JOB) { $env:TRADEOPS_MIGRATE_JOB } else { 'airflow-migrate' }
$ApiService = if ($env:TRADEOPS_API_SERVICE) { $env:TRADEOPS_API_SERVICE } else { 'airflow-api-server' }
$Watchers = @('stop_loss_alerts', 'stop_loss_shocks', 'rebalance_capital', 'rebalance_shocks', 'funding_deviation')
$SecretNames = @('airflow-secrets', 'postgres-secrets', 'tradeops-secrets', 'tradeops-kafka-connections')

function Fail([string]$Message) { [Console]::Error.WriteLine("deploy.ps1: $Message"); exit 1 }

function Show-Usage {
    (Get-Content -LiteralPath (Join-Path $PSScriptRoot 'deploy.sh') -Raw) -match "(?s)usage\(\) \{\s*cat <<EOF\r?\n(.*?)\r?\nEOF" | Out-Null
    $Matches[1].Replace('deploy.sh COMMAND', 'deploy.ps1 COMMAND').Replace('\$', '$').Replace('$MIGRATE_JOB', $MigrateJob).Replace('$API_SERVICE', $ApiService).Replace('$IMAGE_NAME', $ImageName)
    ''
    'PowerShell spellings: -DryRun -Overlay -Namespace -Image -Yes -DeleteSecrets -Help (the --flags work too).'
}

# Bash-style spellings (and a command given after flags) arrive in $Rest / $Command.
$argv = [System.Collections.Generic.List[string]]::new()
if ($Command) { $argv.Add($Command) }
foreach ($a in $Rest) { $argv.Add([string]$a) }
$Command = ''
for ($i = 0; $i -lt $argv.Count; $i++) {
    $a = $argv[$i]
    $value = $null
    if ($a -match '^--(overlay|namespace|image)=(.*)$') { $a = "--$($Matches[1])"; $value = $Matches[2] }
    switch -CaseSensitive ($a) {
        { $_ -in '-h', '--help', 'help' } { $Help = $true; continue }
        '--dry-run' { $DryRun = $true; continue }
        { $_ -in '--yes', '-y' } { $Yes = $true; continue }
        '--delete-secrets' { $DeleteSecrets = $true; continue }
        { $_ -in '--overlay', '--namespace', '--image' } {
            if ($null -eq $value) {
                if ($i + 1 -ge $argv.Count) { Fail "$a needs a value" }
                $i++; $value = $argv[$i]
            }
            if ($a -eq '--overlay') { $Overlay = $value } elseif ($a -eq '--namespace') { $Namespace = $value } else { $Image = $value }
            continue
        }
        default {
            if ($a.StartsWith('-')) { Fail "unknown flag: $a (see --help)" }
            if ($Command) { Fail "more than one command: $Command, $a" }
            $Command = $a
        }
    }
}
if ($Help) { Show-Usage; exit 0 }
if (-not $Command) { Show-Usage; exit 2 }
if ($Overlay -notin 'dev', 'prod') { Fail "--overlay must be dev or prod, not '$Overlay'" }
if (-not $Namespace) { Fail '--namespace must not be empty' }
if (-not $Image) {
    $rev = $null
    try { $rev = (& git describe --always 2>$null) } catch { $rev = $null }
    if (-not $rev -or $LASTEXITCODE -ne 0) { $rev = 'latest' }
    $Image = "${ImageName}:$rev"
}

function Test-Tool([string]$Name) { [bool](Get-Command $Name -CommandType Application -ErrorAction SilentlyContinue) }

# Echo '+ cmd' and run it unless dry-run; a non-zero exit is an error.
function Invoke-Step {
    # [object], not [string]: a [string] parameter turns $null into '' and would pipe an empty stdin.
    param([string]$Exe, [string[]]$Arguments, [object]$InputText = $null, [string]$Display = $null)
    if (-not $Display) { $Display = (@($Exe) + $Arguments) -join ' ' }
    Write-Output "+ $Display"
    if ($DryRun) { return }
    if ($null -ne $InputText) { $InputText | & $Exe @Arguments } else { & $Exe @Arguments }
    if ($LASTEXITCODE -ne 0) { Fail "'$Exe $($Arguments -join ' ')' failed (exit $LASTEXITCODE)" }
}

# Run a native command quietly and report success (Windows PowerShell 5.1 turns stderr into errors under Stop).
function Test-Native([string]$Exe, [string[]]$Arguments) {
    $old = $ErrorActionPreference; $ErrorActionPreference = 'Continue'
    try { & $Exe @Arguments *> $null; return ($LASTEXITCODE -eq 0) } catch { return $false } finally { $ErrorActionPreference = $old }
}

function Get-Engine {
    if ($env:CONTAINER_ENGINE) { return $env:CONTAINER_ENGINE }
    if (Test-Tool docker) { return 'docker' }
    if (Test-Tool podman) { return 'podman' }
    if ($DryRun) { return 'docker' }
    Fail 'neither docker nor podman found (needed for build/push); install one or set CONTAINER_ENGINE'
}

function Assert-Kubectl { if (-not $DryRun -and -not (Test-Tool kubectl)) { Fail 'kubectl not found on PATH (https://kubernetes.io/docs/tasks/tools/)' } }

function Invoke-Check {
    if (-not (Test-Tool kubectl)) { Fail 'MISSING: kubectl (https://kubernetes.io/docs/tasks/tools/)' }
    "kubectl:   $((Get-Command kubectl -CommandType Application | Select-Object -First 1).Source)"
    if (Test-Tool docker) { 'engine:    docker' } elseif (Test-Tool podman) { 'engine:    podman' } else { [Console]::Error.WriteLine('MISSING:   docker or podman (only needed for build/push)') }
    if ($DryRun) {
        '+ kubectl config current-context'
        "+ kubectl get namespace $Namespace"
    } else {
        $old = $ErrorActionPreference; $ErrorActionPreference = 'Continue'
        $context = & kubectl config current-context 2>$null
        $ErrorActionPreference = $old
        if ($LASTEXITCODE -ne 0 -or -not $context) { Fail "no current kubectl context: set one with 'kubectl config use-context NAME' (or KUBECONFIG)" }
        "context:   $context"
        if (Test-Native kubectl @('get', 'namespace', $Namespace)) { "namespace: $Namespace (exists)" }
        else { "namespace: $Namespace (not found, or the cluster is unreachable; apply creates it if the overlay has it)" }
    }
    "overlay:   k8s/overlays/$Overlay"
    "image:     $Image"
    if (-not (Test-Path -LiteralPath "k8s/overlays/$Overlay" -PathType Container)) { [Console]::Error.WriteLine("warning:   k8s/overlays/$Overlay does not exist yet") }
}

function Get-RandomBytes([int]$Count) {
    $bytes = New-Object byte[] $Count
    $rng = [System.Security.Cryptography.RandomNumberGenerator]::Create()
    try { $rng.GetBytes($bytes) } finally { $rng.Dispose() }
    return , $bytes
}
function New-Base64Url([int]$Count) { [Convert]::ToBase64String((Get-RandomBytes $Count)).Replace('+', '-').Replace('/', '_') }
function New-Alnum([int]$Length) { ([Convert]::ToBase64String((Get-RandomBytes 48)) -replace '[+/=]', '').Substring(0, $Length) }
function ConvertTo-B64([string]$Text) { [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($Text)) }

function Test-Secret([string]$Name) { Test-Native kubectl @('get', 'secret', $Name, '-n', $Namespace) }

function Test-WantSecret([string]$Name) {
    Write-Host "+ kubectl get secret $Name -n $Namespace"
    if ($DryRun) { return $true }
    if (Test-Secret $Name) { Write-Host "  Secret $Name exists in ${Namespace}: skipped (never overwritten)"; return $false }
    return $true
}

# $Data: ordered key -> value. Sent on stdin to `kubectl create` (never on disk or argv).
function New-Secret([string]$Name, [System.Collections.Specialized.OrderedDictionary]$Data) {
    $lines = @('apiVersion: v1', 'kind: Secret', 'type: Opaque', 'metadata:', "  name: $Name", "  namespace: $Namespace",
        '  labels:', '    app.kubernetes.io/part-of: tradeops', '    app.kubernetes.io/managed-by: deploy.sh', 'data:')
    foreach ($k in $Data.Keys) { $lines += "  ${k}: $(ConvertTo-B64 $Data[$k])" }
    $shown = ($Data.Keys | ForEach-Object { "$_=<generated>" }) -join ' '
    Invoke-Step kubectl @('create', '-n', $Namespace, '-f', '-') -InputText ($lines -join "`n") -Display "kubectl create -n $Namespace -f -   # Secret ${Name}: $shown" | Out-Host
    if (-not $DryRun) { Write-Host "  created Secret $Name" }
}

function Get-KafkaConnJson([string]$Watcher, [string]$Bootstrap) {
    '{"conn_type":"kafka","extra":{"bootstrap.servers":"' + $Bootstrap + '","group.id":"tradeops-' + $Watcher.Replace('_', '-') +
    '","enable.auto.commit":"false","auto.offset.reset":"earliest","fetch.wait.max.ms":"50","session.timeout.ms":"10000"}}'
}

function Invoke-Secrets {
    Assert-Kubectl
    $pg = ''
    if ($Overlay -eq 'prod') {
        $sql = if ($env:AIRFLOW_SQL_ALCHEMY_CONN) { $env:AIRFLOW_SQL_ALCHEMY_CONN } else { $env:TRADEOPS_DB_URL }
        $db = if ($env:TRADEOPS_DB_URL) { $env:TRADEOPS_DB_URL } else { $env:AIRFLOW_SQL_ALCHEMY_CONN }
        if (-not $sql) { Fail 'prod needs AIRFLOW_SQL_ALCHEMY_CONN (Airflow metadata DB URL; TRADEOPS_DB_URL is used if only that is set)' }
        $bootstrap = $env:KAFKA_BOOTSTRAP_SERVERS
        if (-not $bootstrap) { Fail 'prod needs KAFKA_BOOTSTRAP_SERVERS (e.g. broker-1:9092,broker-2:9092)' }
    } else {
        $bootstrap = 'kafka:9092'   # in-cluster; KAFKA_BOOTSTRAP_SERVERS may point at the local stack
        if (-not $DryRun -and (Test-Secret 'postgres-secrets')) {
            $enc = & kubectl get secret postgres-secrets -n $Namespace -o 'jsonpath={.data.password}'
            if ($LASTEXITCODE -ne 0 -or -not $enc) { Fail "Secret postgres-secrets exists but has no 'password' key" }
            $pg = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($enc))
        } else { $pg = New-Alnum 32 }
        # Airflow's metadata DB through psycopg2 (in the Airflow image); the project DB (database
        # tradeops, created by the postgres-init ConfigMap) through psycopg 3 (pinned).
        $sql = "postgresql+psycopg2://airflow:${pg}@postgres:5432/airflow"
        $db = "postgresql+psycopg://airflow:${pg}@postgres:5432/tradeops"
    }
    Write-Host "Secrets for overlay $Overlay in namespace $Namespace (Kafka: $bootstrap)"
    $admin = ''
    if ($Overlay -eq 'dev' -and (Test-WantSecret 'postgres-secrets')) {
        New-Secret 'postgres-secrets' ([ordered]@{ 'password' = $pg })
    }
    if (Test-WantSecret 'airflow-secrets') {
        $admin = New-Alnum 24
        $approver = New-Alnum 24
        New-Secret 'airflow-secrets' ([ordered]@{
                'fernet-key' = (New-Base64Url 32); 'jwt-secret' = (New-Base64Url 48); 'api-secret-key' = (New-Base64Url 48)
                'admin-password' = $admin; 'approver-password' = $approver; 'sql-alchemy-conn' = $sql })
    }
    if (Test-WantSecret 'tradeops-secrets') { New-Secret 'tradeops-secrets' ([ordered]@{ 'TRADEOPS_DB_URL' = $db }) }
    if (Test-WantSecret 'tradeops-kafka-connections') {
        $conns = [ordered]@{}
        foreach ($w in $Watchers) { $conns["AIRFLOW_CONN_TRADEOPS_KAFKA_$($w.ToUpperInvariant())"] = Get-KafkaConnJson $w $bootstrap }
        New-Secret 'tradeops-kafka-connections' $conns
    }
    if (-not $DryRun -and $admin) {
        Write-Host ''
        Write-Host "Airflow login: $AdminUser / $admin"
        Write-Host "Approver login: $ApproverUser / $approver"
        Write-Host "  shown only now; stored in Secret airflow-secrets (keys admin-password, approver-password), namespace ${Namespace}:"
        Write-Host "  kubectl get secret airflow-secrets -n $Namespace -o jsonpath='{.data.admin-password}'  (base64)"
    }
}

# Split $Image as deploy.sh's split_image does: kustomize `images:` fields plus the
# KubernetesExecutor's worker repository/tag (a registry port is not a tag; a digest becomes
# repository NAME@sha256 + tag HEX, which Airflow joins back with ':').
function Split-Image {
    $name = $Image; $tag = ''; $digest = ''
    if ($Image.Contains('@')) { $name = $Image.Substring(0, $Image.IndexOf('@')); $digest = $Image.Substring($Image.IndexOf('@') + 1) }
    elseif ($Image.Substring($Image.LastIndexOf('/') + 1).Contains(':')) { $name = $Image.Substring(0, $Image.LastIndexOf(':')); $tag = $Image.Substring($Image.LastIndexOf(':') + 1) }
    else { $tag = 'latest' }   # as docker reads a name without a tag
    if ($digest) {
        if (-not $digest.Contains(':')) { Fail "--image digest must look like NAME@sha256:HEX, not '$Image'" }
        $repo = $name + '@' + $digest.Substring(0, $digest.IndexOf(':')); $wtag = $digest.Substring($digest.IndexOf(':') + 1)
    } else {
        $repo = $name; $wtag = $tag
    }
    return [pscustomobject]@{ Name = $name; Tag = $tag; Digest = $digest; WorkerRepo = $repo; WorkerTag = $wtag }
}

# The name the overlay gives tradeops-airflow (prod renames it to its registry), as deploy.sh reads it.
function Get-OverlayImageName([string]$OverlayDir) {
    $current = ''
    foreach ($line in Get-Content -LiteralPath (Join-Path $OverlayDir 'kustomization.yaml')) {
        if ($line -match '^\s*-\s+name:\s*(\S+)\s*$') { $current = $Matches[1] }
        elseif ($current -eq $ImageName -and $line -match '^\s*newName:\s*(\S+)\s*$') { return $Matches[1] }
    }
    return $ImageName
}

# Render the overlay with image + namespace set via a throw-away kustomization in a temp dir
# (kustomize refuses absolute resource paths, so the overlay is referenced relatively).
function Get-Rendered {
    $overlayDir = Join-Path $PSScriptRoot "k8s/overlays/$Overlay"
    if (-not (Test-Path -LiteralPath $overlayDir -PathType Container)) { Fail "k8s/overlays/$Overlay does not exist" }
    # Under the repository's git-ignored .local/, not %TEMP%: on another drive there would be no
    # relative path from the temp dir to the overlay, and kustomize refuses absolute ones.
    $tmp = Join-Path $PSScriptRoot (".local/tradeops-deploy." + [Guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $tmp -Force | Out-Null
    try {
        Push-Location -LiteralPath $tmp
        try { $rel = (Resolve-Path -LiteralPath $overlayDir -Relative) -replace '\\', '/' } finally { Pop-Location }
        if ($rel.StartsWith('./')) { $rel = $rel.Substring(2) }
        $img = Split-Image
        $k = @('apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization', "namespace: $Namespace", 'resources:', "  - $rel",
            'images:', "  - name: $(Get-OverlayImageName $overlayDir)", "    newName: $($img.Name)")
        if ($img.Tag) { $k += "    newTag: `"$($img.Tag)`"" }
        if ($img.Digest) { $k += "    digest: $($img.Digest)" }
        $k += @('patches:', '  - target:', '      kind: ConfigMap', '      name: airflow-config', '    patch: |-',
            '      - op: replace', '        path: /data/AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY', "        value: `"$($img.WorkerRepo)`"",
            '      - op: replace', '        path: /data/AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG', "        value: `"$($img.WorkerTag)`"",
            '      - op: replace', '        path: /data/AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE', "        value: `"$Namespace`"",
            "  # kustomize's namespace setting leaves RoleBinding subjects alone (each of ours has one).",
            '  - target:', '      kind: RoleBinding', '    patch: |-',
            '      - op: replace', '        path: /subjects/0/namespace', "        value: `"$Namespace`"")
        Set-Content -LiteralPath (Join-Path $tmp 'kustomization.yaml') -Value ($k -join "`n") -Encoding ascii
        $out = & kubectl kustomize $tmp
        if ($LASTEXITCODE -ne 0) { Fail 'kubectl kustomize failed' }
        return ($out -join "`n")
    } finally { Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue }
}

function Write-RenderLine {
    "+ kubectl kustomize `$TMP   # `$TMP/kustomization.yaml: resources [k8s/overlays/$Overlay], namespace $Namespace, images [$ImageName -> $Image]"
}

function Invoke-ApplyOverlay {
    Assert-Kubectl
    Invoke-Step kubectl @('delete', 'job', $MigrateJob, '-n', $Namespace, '--ignore-not-found', '--wait=true')
    Write-RenderLine
    $manifests = if ($DryRun) { $null } else { Get-Rendered }
    Invoke-Step kubectl @('apply', '-f', '-') -InputText $manifests -Display 'kubectl apply -f -   # stdin: the rendered manifests'
}

function Invoke-Migrate {
    Invoke-ApplyOverlay
    $waitArgs = @('wait', '--for=condition=complete', "job/$MigrateJob", '-n', $Namespace, '--timeout=600s')
    Write-Output "+ kubectl $($waitArgs -join ' ')"
    if ($DryRun) { return }
    & kubectl @waitArgs
    if ($LASTEXITCODE -ne 0) {
        [Console]::Error.WriteLine('migration Job did not complete; its log:')
        & kubectl logs "job/$MigrateJob" -n $Namespace '--all-containers' '--tail=100'
        exit 1
    }
}

function Invoke-Destroy {
    Assert-Kubectl
    if (-not $Yes -and -not $DryRun) {
        $answer = Read-Host "This deletes the $Overlay overlay's objects in namespace '$Namespace'. Type the namespace name to confirm"
        if ($answer -ne $Namespace) { Fail "confirmation did not match '$Namespace'; nothing deleted" }
    }
    Write-RenderLine
    $manifests = $null
    if (-not $DryRun) {
        # Drop Namespace objects: deleting the Namespace would delete the Secrets too.
        $docs = (Get-Rendered) -split '(?m)^---\s*$'
        $manifests = ($docs | Where-Object { $_ -notmatch '(?m)^kind: Namespace\s*$' }) -join "`n---`n"
    }
    Invoke-Step kubectl @('delete', '--ignore-not-found', '-f', '-') -InputText $manifests -Display 'kubectl delete --ignore-not-found -f -   # stdin: the rendered manifests without the Namespace object'
    if ($DeleteSecrets) { Invoke-Step kubectl (@('delete', 'secret') + $SecretNames + @('-n', $Namespace, '--ignore-not-found')) }
    else { "Secrets kept ($($SecretNames -join ' ')); --delete-secrets deletes them too." }
}

switch ($Command) {
    'check' { Invoke-Check }
    'build' { Invoke-Step (Get-Engine) @('build', '-t', $Image, '.') }
    'push' { Invoke-Step (Get-Engine) @('push', $Image) }
    'secrets' { Invoke-Secrets }
    'apply' { Invoke-ApplyOverlay }
    'migrate' { Invoke-Migrate }
    'render' {
        if ($DryRun) { Write-RenderLine } else { Assert-Kubectl; Get-Rendered }
    }
    'status' { Invoke-Step kubectl @('get', 'pods,deployments,statefulsets,jobs', '-n', $Namespace, '-o', 'wide') }
    'port-forward' {
        'Airflow UI on http://127.0.0.1:8080 (Ctrl-C stops)'
        Invoke-Step kubectl @('port-forward', '--address', '127.0.0.1', '-n', $Namespace, "svc/$ApiService", '8080:8080')
    }
    'destroy' { Invoke-Destroy }
    default { Fail "unknown command: $Command (see --help)" }
}
