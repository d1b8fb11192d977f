// Command progress runs a long command of the Makefile and says, every 30
// seconds while it runs, that it is still running.
//
//	progress -what ./coredns -estimate "about 4 minutes" -- go build -C DIR ARGS...
//	progress -- go vet ./...
//
// With -what, the command must be a go build: it says what it builds and
// how long that takes the first time (see progress.GoBuild). Without, it
// prints the command line first, as make does.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/headlessdns/headless/internal/progress"
)

func main() {
	what := flag.String("what", "", "what the go build command builds, for the messages")
	estimate := flag.String("estimate", "", `how long the build takes the first time, such as "about 4 minutes"`)
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: progress [-what NAME [-estimate TEXT]] -- COMMAND [ARG...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	if *what != "" {
		if len(args) < 2 || args[0] != "go" || args[1] != "build" {
			fmt.Fprintln(os.Stderr, "progress: -what needs a go build command")
			os.Exit(2)
		}
		dir, build := chdir(args[2:])
		err = progress.GoBuild(os.Stdout, *what, *estimate, dir, nil, build...)
	} else {
		fmt.Println(strings.Join(args, " "))
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		err = progress.Run(os.Stdout, "running "+strings.Join(args, " "), cmd)
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && *what == "" {
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// chdir takes go build's -C DIR, which must come first, off args.
func chdir(args []string) (dir string, rest []string) {
	switch {
	case len(args) >= 2 && (args[0] == "-C" || args[0] == "--C"):
		return args[1], args[2:]
	case len(args) >= 1 && strings.HasPrefix(args[0], "-C="):
		return strings.TrimPrefix(args[0], "-C="), args[1:]
	}
	return "", args
}
