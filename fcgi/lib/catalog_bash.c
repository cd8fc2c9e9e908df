/*
 * catalog_bash: the virtual_bash capability's literals (its row is in
 * catalog.c's table): a shell in a sandbox over the session's files, run
 * by the runner (fcgi/runner/tools/virtual_bash.c, fcgi/runner/sandbox.c).
 */
const char catalog_bash_prompt[] =
	"# Shell (bash)\n"
	"You can run shell commands with the bash tool in a sandbox: bash, "
	"the coreutils and python3 (standard library only) are available, "
	"nothing else of the host.\n"
	"- The working directory /workspace holds the session's files (the "
	"file \"/data.csv\" of the session is \"/workspace/data.csv\" here). "
	"Files you create, change or delete there are saved back to the "
	"session when the command ends; /tmp is private and discarded.\n"
	"- There is no network. Each call is a fresh sandbox: no process, "
	"variable or /tmp file survives between calls.\n"
	"- Commands have limits on time, memory, processes, output and file "
	"size; a command past its time limit is killed and its file changes "
	"are discarded. Print only what you need: long output is cut.\n"
	"- The result has exit_code, stdout and stderr, and notes about "
	"files that were not saved (symbolic links, special files, names "
	"that are not allowed, conflicts with changes made meanwhile).";

const char catalog_bash_tools[] =
	"["
	"{\"name\":\"bash\","
	"\"description\":\"Run a bash command in a sandbox whose working "
	"directory holds the session's files; returns its exit code, stdout "
	"and stderr. Changes to the files are saved to the session.\","
	"\"parameters\":{\"type\":\"object\",\"properties\":{"
	"\"command\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":65536,"
	"\"description\":\"The command, run by bash -c in /workspace.\"},"
	"\"timeout\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600,"
	"\"description\":\"Time limit in seconds (the capability's and the "
	"server's limits still apply).\"}},"
	"\"required\":[\"command\"],\"additionalProperties\":false}}"
	"]";

const char catalog_bash_schema[] =
	"{\"type\":\"object\",\"properties\":{"
	"\"timeout_s\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600,"
	"\"default\":60,"
	"\"description\":\"Longest wall time of one command, in seconds "
	"(the server caps it at its sandbox_wall_s).\"}},"
	"\"additionalProperties\":false}";
