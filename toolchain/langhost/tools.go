//go:build tools

// Package tools pins the nodejs language host version that toolchain.sh builds.
package tools

import _ "github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs"
