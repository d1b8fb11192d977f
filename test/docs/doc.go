// Package docs checks the documents against BENCHMARKS.md: that README.md,
// docs/*.md and the comments of deploy/*.yaml quote only figures that
// BENCHMARKS.md holds, and that README.md states the targets it does not
// meet. Its tests read files only.
package docs
