package cmd

import "github.com/spf13/cobra"

// NewCmdHelpExitCodes builds the help topic `claimctl help exit-codes`: a
// command with no Run, which Cobra lists under "Additional help topics",
// made from the one exit-code table (ExitCodes).
func NewCmdHelpExitCodes() *cobra.Command {
	return &cobra.Command{
		Use:   "exit-codes",
		Short: "The exit codes of claimctl, for scripts",
		Long: `claimctl's exit codes are a contract for scripts; they are never renumbered.

` + exitCodesText(78) + `
-E N (--conflict-exit-code) replaces 75 for acquire and run; -E 0 also
silences the message, so that cron can skip a busy claim quietly.`,
	}
}
