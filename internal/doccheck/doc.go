// Package doccheck holds a test, and nothing else: that every exported
// name of the packages an embedder uses has a doc comment, and every such
// package a package doc (go doc is how an embedder learns them).
package doccheck
