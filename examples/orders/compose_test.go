package orders_test

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"go.yaml.in/yaml/v3"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/cli"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Networks map[string]any            `yaml:"networks"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Command     any               `yaml:"command"` // a string or a list
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Profiles    []string          `yaml:"profiles"`
	DependsOn   any               `yaml:"depends_on"` // a list or a map
	Networks    []string          `yaml:"networks"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (s composeService) command() string {
	switch c := s.Command.(type) {
	case string:
		return c
	case []any:
		var parts []string
		for _, p := range c {
			parts = append(parts, p.(string))
		}
		return strings.Join(parts, " ")
	}
	return ""
}

func (s composeService) dependsOn() []string {
	switch d := s.DependsOn.(type) {
	case []any:
		var out []string
		for _, x := range d {
			out = append(out, x.(string))
		}
		return out
	case map[string]any:
		var out []string
		for k := range d {
			out = append(out, k)
		}
		return out
	}
	return nil
}

// containerPorts are the container sides of the "host:container" mappings.
func (s composeService) containerPorts() []string {
	var out []string
	for _, p := range s.Ports {
		out = append(out, p[strings.LastIndex(p, ":")+1:])
	}
	return out
}

const root = "../.."

// TestDockerCompose checks docker-compose.yml against the code, since nothing here can run Docker: the images
// and their versions, that each service reads every variable it is given (and gets the ones it needs), that
// DSNs point at a database service of the right kind on its port and at a database its init script or image
// creates, that the name server and topics are the ones the code uses, and that ports match listeners.
func TestDockerCompose(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("docker-compose.yml is not valid YAML: %v", err)
	}
	svc := f.Services
	for _, name := range []string{"mysql", "postgres", "namesrv", "broker", "topics"} {
		if _, ok := svc[name]; !ok {
			t.Fatalf("service %s is missing", name)
		}
	}
	wantImage := map[string]*regexp.Regexp{
		"mysql":    regexp.MustCompile(`^mysql:8(\.\d+)*$`),
		"postgres": regexp.MustCompile(`^postgres:16(\.\d+)*$`),
		"namesrv":  regexp.MustCompile(`^apache/rocketmq:5\.3\.\d+$`),
		"broker":   regexp.MustCompile(`^apache/rocketmq:5\.3\.\d+$`),
		"topics":   regexp.MustCompile(`^apache/rocketmq:5\.3\.\d+$`),
	}
	for name, re := range wantImage {
		if !re.MatchString(svc[name].Image) {
			t.Errorf("service %s: image %q, want %s", name, svc[name].Image, re)
		}
	}
	rmqVersion := strings.TrimPrefix(svc["broker"].Image, "apache/rocketmq:")
	if !strings.Contains(svc["broker"].command(), "rocketmq-"+rmqVersion+"/") {
		t.Errorf("broker: command %q names a config path of another version than its image %s", svc["broker"].command(), rmqVersion)
	}
	if !strings.Contains(svc["namesrv"].command(), "mqnamesrv") || !slices.Contains(svc["namesrv"].containerPorts(), "9876") {
		t.Errorf("namesrv: want mqnamesrv on 9876, got %q %v", svc["namesrv"].command(), svc["namesrv"].Ports)
	}
	if svc["broker"].Environment["NAMESRV_ADDR"] != "namesrv:9876" {
		t.Errorf("broker: NAMESRV_ADDR %q, want namesrv:9876", svc["broker"].Environment["NAMESRV_ADDR"])
	}
	for _, topic := range []string{bus.OrderCreatedTopic, bus.PaymentCompletedTopic, bus.RetryTopic(bus.OrderGroup), bus.RetryTopic(bus.PaymentGroup)} {
		if !strings.Contains(svc["topics"].command(), " "+topic) {
			t.Errorf("topics: does not create %s", topic)
		}
	}
	for name, s := range svc {
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
		}
		if s.Healthcheck == nil && (name == "mysql" || name == "postgres") {
			t.Errorf("service %s has no healthcheck; the services wait for it", name)
		}
	}

	cmds := map[string]map[string]bool{} // profile → commands run
	for name, s := range svc {
		if s.Build == nil {
			continue
		}
		t.Run(name, func(t *testing.T) { checkService(t, f, name, s) })
		for _, p := range s.Profiles {
			if cmds[p] == nil {
				cmds[p] = map[string]bool{}
			}
			cmds[p][s.command()] = true
		}
	}
	for _, p := range []string{"mysql", "postgres"} {
		if !cmds[p]["order-service"] || !cmds[p]["payment-service"] {
			t.Errorf("profile %s does not run both services: %v", p, cmds[p])
		}
	}
}

func checkService(t *testing.T, f composeFile, name string, s composeService) {
	if s.Build.Context != "." {
		t.Errorf("build context %q, want the repository's root", s.Build.Context)
	}
	if _, err := os.Stat(filepath.Join(root, s.Build.Dockerfile)); err != nil {
		t.Errorf("dockerfile: %v", err)
	}
	cmd := s.command()
	if _, err := os.Stat(filepath.Join("cmd", cmd, "main.go")); err != nil {
		t.Errorf("command %q is not one of examples/orders/cmd: %v", cmd, err)
	}
	env := s.Environment
	for k := range env {
		if !slices.Contains(cli.ServiceEnv, k) {
			t.Errorf("environment %s: the services do not read it (they read %v)", k, cli.ServiceEnv)
		}
	}
	for _, k := range []string{cli.EnvDB, cli.EnvDSN, cli.EnvNameServer} {
		if env[k] == "" {
			t.Errorf("environment %s is required", k)
		}
	}
	d, err := dialect.Parse(env[cli.EnvDB])
	if err != nil {
		t.Fatal(err)
	}
	var dbHost, dbPort, dbName string
	switch d.Name() {
	case "mysql":
		cfg, err := mysql.ParseDSN(env[cli.EnvDSN])
		if err != nil {
			t.Fatalf("%s: %v", cli.EnvDSN, err)
		}
		if dbHost, dbPort, err = net.SplitHostPort(cfg.Addr); err != nil {
			t.Fatal(err)
		}
		dbName = cfg.DBName
	default:
		u, err := url.Parse(env[cli.EnvDSN])
		if err != nil || u.Scheme != "postgres" {
			t.Fatalf("%s: want a postgres:// URL: %v", cli.EnvDSN, err)
		}
		dbHost, dbPort, dbName = u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/")
	}
	db, ok := f.Services[dbHost]
	if !ok {
		t.Fatalf("%s host %q is not a compose service", cli.EnvDSN, dbHost)
	}
	wantPort := map[string]string{"mysql": "3306", "postgres": "5432"}[d.Name()]
	if !strings.HasPrefix(db.Image, map[string]string{"mysql": "mysql:", "postgres": "postgres:"}[d.Name()]) || dbPort != wantPort {
		t.Errorf("%s=%s points at %s:%s (%s)", cli.EnvDB, env[cli.EnvDB], dbHost, dbPort, db.Image)
	}
	created := []string{db.Environment["MYSQL_DATABASE"], db.Environment["POSTGRES_DB"]}
	for _, v := range db.Volumes {
		sql, _ := os.ReadFile(filepath.Join(root, strings.SplitN(v, ":", 2)[0]))
		for _, m := range regexp.MustCompile(`(?i)CREATE DATABASE (?:IF NOT EXISTS )?(\w+)`).FindAllStringSubmatch(string(sql), -1) {
			created = append(created, m[1])
		}
	}
	if !slices.Contains(created, dbName) {
		t.Errorf("database %q is not created by %s (it creates %v)", dbName, dbHost, created)
	}
	if !slices.Contains(s.dependsOn(), dbHost) || !slices.Contains(s.dependsOn(), "topics") {
		t.Errorf("depends_on %v: want %s and topics", s.dependsOn(), dbHost)
	}
	if !slices.Equal(s.Profiles, db.Profiles) {
		t.Errorf("profiles %v differ from its database's %v", s.Profiles, db.Profiles)
	}
	host, port, err := net.SplitHostPort(env[cli.EnvNameServer])
	if err != nil || host != "namesrv" || !slices.Contains(f.Services["namesrv"].containerPorts(), port) {
		t.Errorf("%s=%q: want namesrv:9876", cli.EnvNameServer, env[cli.EnvNameServer])
	}
	_, listen, err := net.SplitHostPort(env[cli.EnvListen])
	if err != nil || !slices.Contains(s.containerPorts(), listen) {
		t.Errorf("%s=%q is not among the published ports %v", cli.EnvListen, env[cli.EnvListen], s.Ports)
	}
}
