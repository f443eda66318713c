/*
 * ibstore.c — the `ibstore` command: dispatches `ibstore <command> [options]`
 * to one cmd_*.c file per subcommand and handles --help, --version and
 * `ibstore help COMMAND`.
 */
#include <stdio.h>
#include <string.h>

#include "cli_util.h"
#include "ibstore.h"

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	void (*usage)(FILE *f);
	const char *summary;
} command;

static const command commands[] = {
	{ "pack", cmd_pack, cmd_pack_usage, "convert IDX, image-folder, CIFAR, tar or JSONL data into a dataset" },
	{ "info", cmd_info, cmd_info_usage, "describe a dataset (text or --json)" },
	{ "verify", cmd_verify, cmd_verify_usage, "check every record's header and checksum" },
	{ "get", cmd_get, cmd_get_usage, "extract one sample (by id or --key) or its metadata" },
	{ "export", cmd_export, cmd_export_usage, "write every sample as DIR/<class>/<file>" },
	{ "plan", cmd_plan, cmd_plan_usage, "an epoch's pruning plan from a file of scores" },
	{ "scores", cmd_scores, cmd_scores_usage, "a run state's configuration, epochs and scores" },
	{ "bench", cmd_bench, cmd_bench_usage, "stream pruned epochs through the loader and time them" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fputs("Usage: ibstore <command> [options]\n"
	      "       ibstore help <command>\n"
	      "       ibstore --help | --version\n"
	      "\n"
	      "Commands:\n", f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "Run 'ibstore <command> --help' for a command's options.\n"
	      "Exit status: 0 success, 1 failure (or problems found), 2 wrong arguments.\n",
	      f);
}

static const command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int help(int argc, char **argv)
{
	if (argc < 2) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc > 2) {
		fprintf(stderr, "ibstore help: too many arguments\n");
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const command *c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "ibstore help: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	c->usage(stdout);
	return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return help(1, argv + 1);
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("ibstore %s (format version %d)\n", ibstore_version(),
		       IBSTORE_FORMAT_VERSION);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0)
		return help(argc - 1, argv + 1);

	const command *c = find_command(argv[1]);
	if (!c) {
		if (argv[1][0] == '-')
			fprintf(stderr, "ibstore: unknown option '%s'\n", argv[1]);
		else
			fprintf(stderr, "ibstore: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	int rc = c->run(argc - 1, argv + 1);

	/* Output that could not be written is a failure, not a success. */
	if ((fflush(stdout) || ferror(stdout)) && rc == CLI_EXIT_OK) {
		fprintf(stderr, "ibstore %s: error writing to standard output\n", c->name);
		rc = CLI_EXIT_FAIL;
	}
	return rc;
}
