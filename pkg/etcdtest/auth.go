package etcdtest

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// AuthPassword is the password of every user EnableAuth adds.
const AuthPassword = "secret"

// EnableAuth turns on etcd authentication with three users, all with
// password AuthPassword: root, claimer (read and write on claimctl/ only)
// and stranger (read and write on other/ only).
func EnableAuth(endpoints []string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: DialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", AuthPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
	}
	for _, u := range []struct{ user, prefix string }{{"claimer", "claimctl/"}, {"stranger", "other/"}} {
		steps = append(steps,
			func() error { _, err := cli.RoleAdd(ctx, u.user); return err },
			func() error {
				_, err := cli.RoleGrantPermission(ctx, u.user, u.prefix, clientv3.GetPrefixRangeEnd(u.prefix), clientv3.PermissionType(clientv3.PermReadWrite))
				return err
			},
			func() error { _, err := cli.UserAdd(ctx, u.user, AuthPassword); return err },
			func() error { _, err := cli.UserGrantRole(ctx, u.user, u.user); return err },
		)
	}
	steps = append(steps, func() error { _, err := cli.AuthEnable(ctx); return err })
	for i, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("enable auth, step %d: %w", i, err)
		}
	}
	return nil
}
