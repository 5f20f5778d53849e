// Wrapper module that pins the etcd release the local cluster is built from.
module vmrole.dev/hack/etcd-build

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.6.16
