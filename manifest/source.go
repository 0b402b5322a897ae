package manifest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/cli-runtime/pkg/resource"
)

// Source is what `kubectl apply` is told to read: the values of its -f
// (files, directories, glob patterns, "-" for stdin), -R and -n flags, or the
// namespace of its kubeconfig context.
type Source struct {
	// Filenames are the -f arguments, in order.
	Filenames []string
	// Recursive is -R: directories are read with every directory below
	// them, dot-directories included.
	Recursive bool
	// Namespace is where objects without metadata.namespace go; "" is
	// "default", the namespace kubectl takes without a kubeconfig, and then
	// a warning says where that changes a finding.
	Namespace string
	// EnforceNamespace is -n given explicitly: kubectl apply refuses an
	// object whose metadata.namespace is another one.
	EnforceNamespace bool
}

// Files returns the streams that `kubectl apply` reads for s, in the order
// it applies them: each -f argument in turn; a glob pattern that names no
// existing path expanded (filepath.Glob, sorted); a directory walked by
// kubectl's own walk (cli-runtime's ExpandPathsToFileVisitors: lexical order
// per directory, so a/ before a-b/; below the top level only with
// Recursive; only *.json, *.yaml and *.yml files, case-sensitive; symbolic
// links taken as files, which fails when they point at a directory or loop);
// Stdin for "-". As kubectl applies nothing when an argument cannot be
// expanded, the error lists every such argument.
func (s Source) Files() ([]string, error) {
	var (
		files []string
		errs  []error
	)
	for _, arg := range s.Filenames {
		switch {
		case arg == Stdin:
			files = append(files, Stdin)
		case strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://"):
			errs = append(errs, fmt.Errorf("%s: URLs are not read: download the file and give its path", arg))
		default:
			found, err := s.expand(arg, len(files) == 0)
			files = append(files, found...)
			errs = append(errs, err...)
		}
	}
	if len(errs) > 0 {
		return nil, utilerrors.NewAggregate(errs)
	}
	return files, nil
}

// expand returns the files of one -f argument that is neither stdin nor a
// URL, as cli-runtime's Builder.FilenameParam and Builder.Path find them;
// none is the Builder's "nothing read yet", under which an argument without
// a file is an error.
func (s Source) expand(arg string, none bool) ([]string, []error) {
	matches, err := expandPattern(arg)
	if err != nil {
		return nil, []error{err}
	}
	var (
		files []string
		errs  []error
	)
	for _, p := range matches {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("the path %q does not exist", p))
			continue
		} else if err != nil {
			errs = append(errs, fmt.Errorf("the path %q cannot be accessed: %v", p, err))
			continue
		}
		visitors, err := resource.ExpandPathsToFileVisitors(nil, p, s.Recursive, resource.FileExtensions, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("error reading %q: %v", p, err))
		}
		for _, v := range visitors {
			files = append(files, v.(*resource.FileVisitor).Path)
		}
	}
	if none && len(files) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no file to read: in a directory, kubectl apply reads the *.json, *.yaml and *.yml files, and those of subdirectories only with -R", arg))
	}
	return files, errs
}

// expandPattern is kubectl's reading of a -f argument: the path itself when
// it exists, else the paths its glob pattern matches (an error when none).
func expandPattern(arg string) ([]string, error) {
	if _, err := os.Stat(arg); !os.IsNotExist(err) {
		return []string{arg}, nil
	}
	matches, err := filepath.Glob(arg)
	if errors.Is(err, filepath.ErrBadPattern) {
		return nil, fmt.Errorf("pattern %q is not valid: %v", arg, err)
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("the path %q does not exist", arg)
	}
	return matches, nil
}

// Walk calls read for each stream of s (see Files), in order; Stdin, which
// may be named once, is passed as StdinName. The returned error is an I/O
// problem (a file that cannot be opened or read: a symbolic link that loops
// or points at a directory, as kubectl fails on it too) or read's error, and
// stops the walk.
func (s Source) Walk(stdin io.Reader, read func(name string, r io.Reader) error) error {
	files, err := s.Files()
	if err != nil {
		return err
	}
	stdinRead := false
	for _, name := range files {
		if name == Stdin {
			if stdinRead {
				return fmt.Errorf("%q given more than once: stdin can be read only once", Stdin)
			}
			stdinRead = true
			err = read(StdinName, stdin)
		} else {
			err = readFile(name, read)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readFile opens name and passes it to read.
func readFile(name string, read func(name string, r io.Reader) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return read(name, f)
}

// Read reads every stream of s (see Walk) as Read does, and passes objects
// and document problems to h with the namespace kubectl apply gives them:
// objects of namespaced kinds without metadata.namespace go to s.Namespace
// (when set); with s.EnforceNamespace, an object in another namespace is an
// error, as kubectl apply refuses it.
func (s Source) Read(stdin io.Reader, h Handler) error {
	if s.Namespace != "" {
		h = &applierNamespace{Handler: h, namespace: s.Namespace, enforce: s.EnforceNamespace}
	}
	return s.Walk(stdin, func(name string, r io.Reader) error { return Read(name, r, h) })
}

// applierNamespace gives objects the namespace of kubectl apply's -n flag or
// kubeconfig context.
type applierNamespace struct {
	Handler
	namespace string
	enforce   bool
}

func (a *applierNamespace) Object(o Object) {
	ns := o.Object.GetNamespace()
	switch {
	case o.NamespaceUnset:
		o.Object.SetNamespace(a.namespace)
	case a.enforce && supported[o.Object.GetObjectKind().GroupVersionKind().GroupKind()].namespaced && ns != a.namespace:
		a.Error(&Error{Position: o.Position, Kind: o.Kind, Namespace: ns, Name: o.Object.GetName(), Message: fmt.Sprintf(
			"metadata.namespace %q is not the namespace %q of -n: kubectl apply -n %s refuses this object; remove metadata.namespace or pass --namespace=%s", ns, a.namespace, a.namespace, ns)})
		return
	}
	a.Handler.Object(o)
}
