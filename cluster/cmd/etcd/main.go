// etcd for the local control plane, built from go.etcd.io/etcd/server/v3 (the etcd binary's
// own main package lives in the repository's root module, which is not published separately).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
