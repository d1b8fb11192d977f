// Command monitoring writes the files of deploy/monitoring that package
// monitoring makes: the dashboard, its ConfigMap and the PrometheusRule.
//
//	go run ./internal/cmd/monitoring -dir deploy/monitoring
package main

import (
	"flag"
	"log"
	"os"
	"path/filepath"

	"github.com/headlessdns/headless/internal/monitoring"
)

func main() {
	dir := flag.String("dir", "deploy/monitoring", "the folder of the rules file, where the files are written")
	flag.Parse()
	files, err := monitoring.Render(*dir)
	if err != nil {
		log.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(*dir, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
