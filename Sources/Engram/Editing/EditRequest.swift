import Foundation

/// A prompt and the answers that count as correct for it. `answers[0]` is the gold string the
/// token-level metrics score (KnowEdit scripts use the first alias only); the rest are aliases that
/// answer matchers also accept.
public struct PromptAnswer: Codable, Equatable, Sendable {
    public var prompt: String
    public var answers: [String]

    public init(prompt: String, answers: [String]) {
        self.prompt = prompt
        self.answers = answers
    }

    /// The string the teacher-forced metrics score.
    public var gold: String? { answers.first }
}

/// A named set of probes, such as KnowEdit's `locality.Relation_Specificity` or
/// `portability.Reasoning`. Keys are kept as the data file spells them.
public struct PromptGroup: Codable, Equatable, Sendable {
    public var key: String
    public var items: [PromptAnswer]

    public init(key: String, items: [PromptAnswer]) {
        self.key = key
        self.items = items
    }
}

/// One fact to write into a model, with the probes that judge the edit. Every edit-file layout
/// (EasyEdit/KnowEdit, flattened CounterFact, zsRE MEND, ROME CounterFact, MQuAKE rewrites) is read
/// into this one record, so editors and evaluators never see file formats.
public struct EditRequest: Codable, Equatable, Sendable {
    /// The dataset's id (CounterFact/MQuAKE `case_id`), or the record's position when the file has none.
    public var caseID: String
    /// The edit prompt with the subject filled in, e.g. "The mother tongue of Danielle Darrieux is".
    public var prompt: String
    /// The subject as it occurs inside `prompt` (locate-then-edit methods find its last token).
    public var subject: String
    /// The new object to write.
    public var targetNew: String
    /// The true object and its aliases, when the file has one (empty otherwise).
    public var groundTruth: [String]
    /// Paraphrases of `prompt` (generalisation). For MQuAKE edits: the single-hop question.
    public var rephrasePrompts: [String]
    /// Probes whose answers the edit should leave alone, grouped by key (sorted by key).
    public var locality: [PromptGroup]
    /// Probes whose answers should follow from the edit, grouped by key (sorted by key).
    public var portability: [PromptGroup]

    public init(caseID: String, prompt: String, subject: String, targetNew: String, groundTruth: [String] = [],
                rephrasePrompts: [String] = [], locality: [PromptGroup] = [], portability: [PromptGroup] = []) {
        self.caseID = caseID
        self.prompt = prompt
        self.subject = subject
        self.targetNew = targetNew
        self.groundTruth = groundTruth
        self.rephrasePrompts = rephrasePrompts
        self.locality = locality.sorted { $0.key < $1.key }
        self.portability = portability.sorted { $0.key < $1.key }
    }

    /// The edit statement, "prompt target" (what in-context editing shows the model as a new fact).
    public var statement: String { EditRequest.join(prompt, targetNew) }

    /// Prompt and continuation as one text, with exactly one separating space: a space is inserted
    /// unless the prompt already ends in whitespace or the target already starts with it (zsRE has
    /// targets such as " Dickens"; EasyEdit's `prompt + " " + target` would put two spaces there).
    public static func join(_ prompt: String, _ continuation: String) -> String {
        let promptEnds = prompt.last.map(\.isWhitespace) ?? true
        let targetStarts = continuation.first.map(\.isWhitespace) ?? true
        return promptEnds || targetStarts ? prompt + continuation : prompt + " " + continuation
    }

    /// The range of the subject inside the prompt: its first occurrence, as ROME's lookup finds it (the
    /// prompt becomes a template with every occurrence replaced by "{}", then the first "{}" is taken).
    public var subjectRange: Range<String.Index>? { prompt.range(of: subject) }
}

/// One hop of an MQuAKE chain: a question, the same fact as a cloze statement, and its answers.
public struct SingleHop: Codable, Equatable, Sendable {
    public var question: String
    public var cloze: String
    public var answer: String
    public var aliases: [String]

    public init(question: String, cloze: String, answer: String, aliases: [String]) {
        self.question = question
        self.cloze = cloze
        self.answer = answer
        self.aliases = aliases
    }

    public var answers: [String] { [answer] + aliases }
}

/// An MQuAKE case: several edits injected together, and multi-hop questions whose answer changes
/// only if the model chains the edited facts.
public struct MultiHopCase: Codable, Equatable, Sendable {
    public var caseID: String
    public var requests: [EditRequest]
    /// Paraphrases of the one multi-hop question (three in MQuAKE).
    public var questions: [String]
    public var answer: String
    public var answerAliases: [String]
    public var newAnswer: String
    public var newAnswerAliases: [String]
    public var singleHops: [SingleHop]
    public var newSingleHops: [SingleHop]

    public init(caseID: String, requests: [EditRequest], questions: [String], answer: String, answerAliases: [String],
                newAnswer: String, newAnswerAliases: [String], singleHops: [SingleHop], newSingleHops: [SingleHop]) {
        self.caseID = caseID
        self.requests = requests
        self.questions = questions
        self.answer = answer
        self.answerAliases = answerAliases
        self.newAnswer = newAnswer
        self.newAnswerAliases = newAnswerAliases
        self.singleHops = singleHops
        self.newSingleHops = newSingleHops
    }

    public var originalAnswers: [String] { [answer] + answerAliases }
    public var newAnswers: [String] { [newAnswer] + newAnswerAliases }
}

extension EditRequest {
    /// Refuses a request whose prompt followed by its new target takes more than `context` tokens:
    /// nothing past the model's context can be scored or edited, and a long prompt would otherwise fail
    /// deep inside a pass (or, on a rotary model, run on untrained positions). (A prompt that fits alone
    /// but not behind a context template is named by the value search.)
    public func checkFits(tokenizer: Tokenizer, context: Int) throws {
        let target = targetNew.hasPrefix(" ") ? targetNew : " " + targetNew
        let tokens = tokenizer.encode(prompt, addSpecial: true).count + tokenizer.encode(target, addSpecial: false).count
        guard tokens - 1 <= context else { // the last target token is scored, never fed
            throw EngramError.invalidArgument("request \(caseID): the prompt and new target take \(tokens) tokens, more than the model's context of \(context) tokens")
        }
    }
}
